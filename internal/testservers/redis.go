package testservers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisReadyTimeout bounds how long a redis-server may take to answer PING.
const redisReadyTimeout = 20 * time.Second

// Redis starts a standalone redis-server on a free 127.0.0.1 port, without
// persistence (--save "" --appendonly no), and waits until it answers PING.
// URI is redis://127.0.0.1:PORT. t.Cleanup stops it.
func Redis(t testing.TB) *Server {
	t.Helper()
	bin := lookPath(t, "redis-server")
	s := newServer(t, "redis", func(s *Server) error {
		p, err := startProcess(s.dir, s.logPath, "", bin,
			"--bind", "127.0.0.1", "--port", portOf(s.Addr),
			"--save", "", "--appendonly", "no", "--dir", s.dir)
		if err != nil {
			return err
		}
		if err := waitRedis(p, s.Addr, redisReadyTimeout); err != nil {
			return killFailed(p, err)
		}
		s.setProc(p)
		return nil
	})
	s.startFirst(t, func() string { return loopback(FreePorts(t, 1)[0]) })
	s.URI = "redis://" + s.Addr
	return s
}

// RedisCluster starts a Redis Cluster of 3 masters without replicas, each
// redis-server on its own free client port and cluster bus port, assigns the
// slots, joins the nodes, and waits until every node reports
// cluster_state:ok. It returns the 3 client addresses ("127.0.0.1:PORT").
// t.Cleanup stops the nodes.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	bin := lookPath(t, "redis-server")
	const n = 3
	var lastErr error
	var logs []string
	for range 2 {
		ports := FreePorts(t, 2*n) // client ports then bus ports
		nodes := make([]*Server, n)
		addrs := make([]string, n)
		logs = logs[:0]
		var err error
		for i := range n {
			bus := ports[n+i]
			nodes[i] = newServer(t, fmt.Sprintf("redis-cluster-node%d", i), func(s *Server) error {
				p, err := startProcess(s.dir, s.logPath, "", bin,
					"--bind", "127.0.0.1", "--port", portOf(s.Addr),
					"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
					"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
					"--cluster-node-timeout", "2000",
					"--save", "", "--appendonly", "no", "--dir", s.dir)
				if err != nil {
					return err
				}
				if err := waitRedis(p, s.Addr, redisReadyTimeout); err != nil {
					return killFailed(p, err)
				}
				s.setProc(p)
				return nil
			})
			nodes[i].Addr = loopback(ports[i])
			nodes[i].URI = "redis://" + nodes[i].Addr
			addrs[i] = nodes[i].Addr
			logs = append(logs, nodes[i].logPath)
			if err = nodes[i].launch(nodes[i]); err != nil {
				err = fmt.Errorf("node %d: %w", i, err)
				break
			}
		}
		if err == nil {
			err = formCluster(addrs, ports[n:], 60*time.Second)
			if err == nil {
				return addrs
			}
		}
		lastErr = err
		for _, s := range nodes {
			if s != nil {
				s.Stop(t)
			}
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	var tails strings.Builder
	for _, l := range logs {
		tails.WriteString(logTail(l))
	}
	t.Fatalf("testservers: starting redis cluster: %v%s", lastErr, tails.String())
	return nil
}

// formCluster assigns a third of the slots to each node, gives each its own
// config epoch, introduces the nodes to each other and waits until every one
// of them reports cluster_state:ok.
func formCluster(addrs []string, busPorts []int, timeout time.Duration) error {
	const slots = 16384
	n := len(addrs)
	for i, addr := range addrs {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if _, err := redisDo(addr, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE: %w", addr, err)
		}
		if _, err := redisDo(addr, "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("%s: CLUSTER SET-CONFIG-EPOCH: %w", addr, err)
		}
	}
	for i := 1; i < n; i++ {
		_, port, _ := net.SplitHostPort(addrs[i])
		if _, err := redisDo(addrs[0], "CLUSTER", "MEET", "127.0.0.1", port, strconv.Itoa(busPorts[i])); err != nil {
			return fmt.Errorf("%s: CLUSTER MEET %s: %w", addrs[0], addrs[i], err)
		}
	}
	deadline := time.Now().Add(timeout)
	for _, addr := range addrs {
		for {
			info, err := redisDo(addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no cluster_state:ok with %d known nodes after %v (last CLUSTER INFO: %q, err %v)", addr, n, timeout, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// waitRedis waits until the redis-server at addr answers PING with PONG.
func waitRedis(p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := waitDial(p, addr, timeout); err != nil {
		return err
	}
	for {
		reply, err := redisDo(addr, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if p.exited() {
			return p.exitError()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no PONG after %v (reply %q, err %v)", addr, timeout, reply, err)
		}
		time.Sleep(pollInterval)
	}
}

// redisDo sends one command in RESP on a fresh connection and returns a
// simple, integer or bulk reply as a string; an error reply is an error.
func redisDo(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// portOf returns the port part of "host:port".
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
