package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The hash chain. Every line Warden ships (call records and checkpoints)
// ends with a trailer
//
//	,"seq":N,"prev":"<hex>","hash":"<hex>"}
//
// (checkpoints add ,"sig":"<base64>" before the brace) where, with body the
// line's bytes before the trailer,
//
//	hash = SHA-256(prev ‖ seq as 8 big-endian bytes ‖ SHA-256(body))
//
// and prev is the previous line's hash (32 zero bytes before the first).
// Editing, deleting, inserting or reordering lines breaks a hash or a link;
// checkpoints sign the hash with the instance's Ed25519 key, so a forger
// without the key cannot rebuild the chain past the last checkpoint.
// Hashing the body outside the spool's lock leaves only a 72-byte hash
// under it.

const hashHex = 64

// bodyHash is the inner hash of a line's body (computed off the lock).
func bodyHash(body []byte) [32]byte { return sha256.Sum256(body) }

// chainHash links a body hash to its place in the chain.
func chainHash(prev [32]byte, seq uint64, body [32]byte) [32]byte {
	var b [32 + 8 + 32]byte
	copy(b[:32], prev[:])
	binary.BigEndian.PutUint64(b[32:40], seq)
	copy(b[40:], body[:])
	return sha256.Sum256(b[:])
}

// appendTrailer appends the chain trailer (without the closing brace).
func appendTrailer(b []byte, seq uint64, prev, hash [32]byte) []byte {
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"prev":"`...)
	b = hex.AppendEncode(b, prev[:])
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, hash[:])
	return append(b, '"')
}

// Trailer is a line's chain fields.
type Trailer struct {
	Seq        uint64
	Prev, Hash [32]byte
	Sig        []byte // checkpoints only
	Body       []byte // the bytes the body hash covers
}

// ParseTrailer splits a sealed line into its body and chain fields and
// checks the line's own hash (not its link to the previous line).
func ParseTrailer(line []byte) (Trailer, error) {
	var t Trailer
	s := string(line)
	if !strings.HasSuffix(s, "}") {
		return t, errors.New("line does not end with }")
	}
	s = s[:len(s)-1]
	const hashKey, prevKey, seqKey, sigKey = `,"hash":"`, `,"prev":"`, `,"seq":`, `,"sig":"`
	if i := strings.LastIndex(s, sigKey); i > len(hashKey)+hashHex && i+len(sigKey) < len(s) && strings.HasSuffix(s, `"`) &&
		strings.HasSuffix(s[:i-1-hashHex], hashKey) {
		sig, err := base64.StdEncoding.DecodeString(s[i+len(sigKey) : len(s)-1])
		if err != nil || len(sig) != ed25519.SignatureSize {
			return t, errors.New("bad checkpoint signature encoding")
		}
		t.Sig = sig
		s = s[:i]
	}
	var ok bool
	if s, t.Hash, ok = cutHexSuffix(s, hashKey); !ok {
		return t, errors.New("no chain hash")
	}
	if s, t.Prev, ok = cutHexSuffix(s, prevKey); !ok {
		return t, errors.New("no chain prev")
	}
	i := strings.LastIndex(s, seqKey)
	if i < 0 {
		return t, errors.New("no chain seq")
	}
	seq, err := strconv.ParseUint(s[i+len(seqKey):], 10, 64)
	if err != nil || seq == 0 {
		return t, fmt.Errorf("bad chain seq %q", s[i+len(seqKey):])
	}
	t.Seq = seq
	t.Body = line[:i]
	return t, nil
}

// cutHexSuffix removes key"<64 hex digits>" from the end of s.
func cutHexSuffix(s, key string) (rest string, h [32]byte, ok bool) {
	n := len(key) + hashHex + 1
	if len(s) < n || !strings.HasSuffix(s, `"`) || !strings.HasPrefix(s[len(s)-n:], key) {
		return s, h, false
	}
	if _, err := hex.Decode(h[:], []byte(s[len(s)-1-hashHex:len(s)-1])); err != nil {
		return s, h, false
	}
	return s[:len(s)-n], h, true
}

// Valid reports whether the line's hash matches its body, seq and prev.
func (t Trailer) Valid() bool { return chainHash(t.Prev, t.Seq, bodyHash(t.Body)) == t.Hash }

// Signer holds an instance's checkpoint key.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// PublicKeyString is the key as checkpoints and `warden audit verify --key`
// carry it.
func (s *Signer) PublicKeyString() string { return base64.StdEncoding.EncodeToString(s.pub) }

// loadOrCreateKey reads dir/signing.key (PKCS#8 PEM, 0600), creating it and
// dir/signing.pub on first start; in memory (dir "") the key lives as long
// as the process.
func loadOrCreateKey(dir string) (*Signer, error) {
	if dir == "" {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Signer{priv: priv, pub: pub}, nil
	}
	p := filepath.Join(dir, "signing.key")
	if b, err := os.ReadFile(p); err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("audit signing key %s: not PEM", p)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("audit signing key %s: %w", p, err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("audit signing key %s: not Ed25519", p)
		}
		return &Signer{priv: priv, pub: priv.Public().(ed25519.PublicKey)}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	s := &Signer{priv: priv, pub: pub}
	if err := writeFileAtomic(filepath.Join(dir, "signing.pub"), []byte(s.PublicKeyString()+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	return s, nil
}

// ResolveInstance returns the instance name for a spool in dir: want if set (and then
// persisted), else the one in dir/instance, else host name plus a random
// suffix.
func ResolveInstance(dir, want string) (string, error) {
	p := filepath.Join(dir, "instance")
	if dir != "" && want == "" {
		if b, err := os.ReadFile(p); err == nil {
			if name := strings.TrimSpace(string(b)); name != "" {
				return name, nil
			}
		}
	}
	name := want
	if name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "warden"
		}
		var r [4]byte
		_, _ = rand.Read(r[:])
		name = host + "-" + hex.EncodeToString(r[:])
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("audit spool %s: %w", dir, err)
		}
		if err := writeFileAtomic(p, []byte(name+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("audit instance name: %w", err)
		}
	}
	return name, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// checkpointBody is a checkpoint line's body: what the chain's next entry
// signs for.
func checkpointBody(b []byte, instance string, seq uint64, t time.Time, key, reason string, final bool) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = append(b, `,"kind":"checkpoint"`...)
	b = appendField(b, "id", checkpointID(instance, seq))
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "instance", instance)
	b = appendField(b, "key", key)
	b = appendField(b, "reason", reason)
	if final {
		b = append(b, `,"final":true`...)
	}
	return b
}

func checkpointID(instance string, seq uint64) string {
	return instance + "/checkpoint/" + strconv.FormatUint(seq, 10)
}
