package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddycache/caddy-cache/internal/testservers"
	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/storagetest"
)

// startRedisProc starts redis-server with args in its own process group and
// stops it (by its pid) when the test ends. ready must succeed before it
// returns.
func startRedisProc(t *testing.T, dir string, ready func(ctx context.Context) error, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH: %s", testservers.InstallHint)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server %v exited early: %s", args, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server %v not ready after 20s: %v\n%s", args, err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testCA writes a CA and a server certificate for 127.0.0.1 and
// "redis.test" into dir and returns the paths.
func testCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cache test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"redis.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	writePEM(t, certFile, "CERTIFICATE", srvDER)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return caFile, certFile, keyFile
}

func roundTrip(t *testing.T, r *Redis) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	e := storagetest.Entry("tls", 3000)
	if err := r.Put(ctx, "k", e); err != nil {
		return err
	}
	got, err := r.Get(ctx, "k")
	if err != nil {
		return err
	}
	if d := storagetest.Diff(e, got, 0); d != "" {
		t.Fatalf("round trip: %s", d)
	}
	return nil
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testCA(t, dir)
	port := testservers.FreePorts(t, 1)[0]
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startRedisProc(t, dir, func(ctx context.Context) error {
		c := goredis.NewClient(&goredis.Options{Addr: addr, TLSConfig: &tls.Config{InsecureSkipVerify: true}, DialerRetries: 1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}, "--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir)

	t.Run("addresses with ca_file", func(t *testing.T) {
		r := provision(t, &Redis{Addresses: []string{addr}, Namespace: uniqueNamespace(t), TLS: &TLSConfig{CAFile: caFile}})
		if err := roundTrip(t, r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("rediss url with ca_file and server_name", func(t *testing.T) {
		r := provision(t, &Redis{
			URL: "rediss://" + addr, Namespace: uniqueNamespace(t),
			TLS: &TLSConfig{CAFile: caFile, ServerName: "redis.test"},
		})
		if err := roundTrip(t, r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("insecure_skip_verify", func(t *testing.T) {
		r := provision(t, &Redis{Addresses: []string{addr}, Namespace: uniqueNamespace(t), TLS: &TLSConfig{InsecureSkipVerify: true}})
		if err := roundTrip(t, r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown CA is refused", func(t *testing.T) {
		r := provisionOnly(t, &Redis{Addresses: []string{addr}, Namespace: uniqueNamespace(t), TLS: &TLSConfig{}})
		defer r.Cleanup()
		err := roundTrip(t, r)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("TLS to a server of an unknown CA: %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("wrong server_name is refused", func(t *testing.T) {
		r := provisionOnly(t, &Redis{
			Addresses: []string{addr}, Namespace: uniqueNamespace(t),
			TLS: &TLSConfig{CAFile: caFile, ServerName: "other.test"},
		})
		defer r.Cleanup()
		err := roundTrip(t, r)
		var host x509.HostnameError
		if !errors.As(err, &host) {
			t.Fatalf("TLS with a server_name the certificate does not name: %v, want x509.HostnameError", err)
		}
	})
}

// Sentinel mode: the store finds the master through a sentinel, with a
// password on the master and another on the sentinel.
func TestSentinel(t *testing.T) {
	ports := testservers.FreePorts(t, 2)
	master := "127.0.0.1:" + strconv.Itoa(ports[0])
	sentinel := "127.0.0.1:" + strconv.Itoa(ports[1])
	mdir, sdir := t.TempDir(), t.TempDir()
	startRedisProc(t, mdir, func(ctx context.Context) error {
		c := goredis.NewClient(&goredis.Options{Addr: master, Password: "master-pw", DialerRetries: 1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}, "--bind", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--requirepass", "master-pw",
		"--save", "", "--appendonly", "no", "--dir", mdir)
	conf := filepath.Join(sdir, "sentinel.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
requirepass sentinel-pw
sentinel monitor cachemaster 127.0.0.1 %d 1
sentinel auth-pass cachemaster master-pw
sentinel down-after-milliseconds cachemaster 60000
`, ports[1], sdir, ports[0])), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	startRedisProc(t, sdir, func(ctx context.Context) error {
		c := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel, Password: "sentinel-pw", DialerRetries: 1})
		defer c.Close()
		return c.GetMasterAddrByName(ctx, "cachemaster").Err()
	}, conf, "--sentinel")

	storagetest.Run(t, func(t *testing.T) storage.Store {
		return provision(t, &Redis{
			Addresses: []string{sentinel}, SentinelMaster: "cachemaster",
			SentinelPassword: "sentinel-pw", Password: "master-pw", Namespace: uniqueNamespace(t),
		})
	}, storagetest.Options{Corrupt: corrupt})

	// The entries really are on the master.
	r := provision(t, &Redis{
		Addresses: []string{sentinel}, SentinelMaster: "cachemaster",
		SentinelPassword: "sentinel-pw", Password: "master-pw", Namespace: uniqueNamespace(t),
	})
	if err := r.Put(bg, "on-master", storagetest.Entry("m", 10)); err != nil {
		t.Fatal(err)
	}
	direct := goredis.NewClient(&goredis.Options{Addr: master, Password: "master-pw"})
	defer direct.Close()
	if n, err := direct.Exists(bg, r.KeyPrefix()+"on-master").Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS on the master = %d, %v; want 1", n, err)
	}
}
