package file

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"path/filepath"

	"github.com/caddycache/caddy-cache/storage"
)

// An entry file is a small header followed by the storage.Encode bytes:
//
//	magic "CCF" | version (1 byte) | expires (int64, Unix ns, 0 = never, big endian)
//	| key length (uint16, big endian) | key | CRC-32C of all previous bytes (4 bytes, big endian)
//	| storage.Encode bytes
//
// The header carries the key, because the file name is only a hash of it,
// and the expiry, so that sweeps read 14 bytes per file instead of decoding
// entries. The header has its own checksum; the entry has the codec's.
const (
	fileVersion byte = 1
	fixedLen         = 3 + 1 + 8 + 2 // magic, version, expires, key length
	crcLen           = 4
	maxKey           = 1<<16 - 1
)

var (
	fileMagic  = [3]byte{'C', 'C', 'F'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// encodeFile builds the content of the file for key.
func encodeFile(key string, expires int64, enc []byte) []byte {
	b := make([]byte, 0, fixedLen+len(key)+crcLen+len(enc))
	b = append(b, fileMagic[:]...)
	b = append(b, fileVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = binary.BigEndian.AppendUint16(b, uint16(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, enc...)
}

// parseFixed reads the fixed part of the header: the expiry and the key
// length.
func parseFixed(b []byte) (expires int64, keyLen int, err error) {
	if len(b) < fixedLen {
		return 0, 0, corrupt("file header truncated (%d bytes)", len(b))
	}
	if b[0] != fileMagic[0] || b[1] != fileMagic[1] || b[2] != fileMagic[2] {
		return 0, 0, corrupt("not a cache entry file")
	}
	if b[3] != fileVersion {
		return 0, 0, corrupt("unknown entry file version %d", b[3])
	}
	return int64(binary.BigEndian.Uint64(b[4:12])), int(binary.BigEndian.Uint16(b[12:14])), nil
}

// parseFile splits file content into its header fields and the encoded
// entry, checking the header checksum.
func parseFile(b []byte) (key string, expires int64, enc []byte, err error) {
	expires, keyLen, err := parseFixed(b)
	if err != nil {
		return "", 0, nil, err
	}
	end := fixedLen + keyLen
	if len(b) < end+crcLen {
		return "", 0, nil, corrupt("file header truncated (%d bytes, key of %d)", len(b), keyLen)
	}
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:end+crcLen]) {
		return "", 0, nil, corrupt("file header checksum mismatch")
	}
	return string(b[fixedLen:end]), expires, b[end+crcLen:], nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("file storage: %w: %s", storage.ErrCorrupt, fmt.Sprintf(format, args...))
}

// name returns the hex SHA-256 of key, the entry's file name.
func name(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// relPath is where the entry for key lives under the root: two levels of
// subdirectories named by the first two bytes of the hash.
func relPath(key string) string {
	n := name(key)
	return filepath.Join(n[0:2], n[2:4], n)
}

// isHex reports whether s is n lower-case hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
