package storage

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Algorithm identifies the hash of a Digest.
type Algorithm uint8

// The algorithms distribution stores blobs under. SHA256 is the zero value on
// purpose: nearly every registry holds only sha256 digests.
const (
	SHA256 Algorithm = iota
	SHA384
	SHA512
)

var algorithms = [...]struct {
	name string
	size int
}{
	SHA256: {"sha256", 32},
	SHA384: {"sha384", 48},
	SHA512: {"sha512", 64},
}

// String returns the algorithm's name as it appears in paths and digests.
func (a Algorithm) String() string { return algorithms[a].name }

// Hash returns a new hash of the algorithm.
func (a Algorithm) Hash() hash.Hash {
	switch a {
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	return sha256.New()
}

// Matches reports whether b hashes to d.
func (d Digest) Matches(b []byte) bool {
	h := d.alg.Hash()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)) == d.Hex()
}

// AlgorithmFromString parses an algorithm name such as "sha256".
func AlgorithmFromString(s string) (Algorithm, bool) {
	for i, a := range algorithms {
		if a.name == s {
			return Algorithm(i), true
		}
	}
	return 0, false
}

// Digest is a compact, comparable content digest. A sha256 digest takes 33
// bytes and no allocation; the tail of longer sums (sha384, sha512) lives in
// rest, so no algorithm is ever truncated or skipped.
type Digest struct {
	alg  Algorithm
	sum  [32]byte
	rest string
}

// ParseDigest parses "<alg>:<hex>" with lower-case hex of the algorithm's length.
func ParseDigest(s string) (Digest, error) {
	alg, hx, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, fmt.Errorf("invalid digest %q: no algorithm", s)
	}
	return DigestFromHex(alg, hx)
}

// DigestFromHex builds a Digest from an algorithm name and its hex sum, as
// found in the directory names of the layout.
func DigestFromHex(alg, hx string) (Digest, error) {
	a, ok := AlgorithmFromString(alg)
	if !ok {
		return Digest{}, fmt.Errorf("invalid digest %s:%.16s: unsupported algorithm", alg, hx)
	}
	size := algorithms[a].size
	if len(hx) != 2*size {
		return Digest{}, fmt.Errorf("invalid digest %s:%.16s...: %d hex digits, want %d", alg, hx, len(hx), 2*size)
	}
	// Decoded through a table, one pass, nothing allocated: a walk parses a
	// digest for every blob, link, revision and manifest reference it meets,
	// and a digit-or-letter branch mispredicts on every other character.
	var raw [64]byte
	var bad byte
	hx = hx[:2*size]
	for i := range size {
		hi, lo := unhexTable[hx[2*i]], unhexTable[hx[2*i+1]]
		bad |= hi | lo
		raw[i] = hi<<4 | lo&0xf
	}
	if bad&0x10 != 0 {
		return Digest{}, fmt.Errorf("invalid digest %s:%.16s...: not lower-case hex", alg, hx)
	}
	d := Digest{alg: a}
	copy(d.sum[:], raw[:32])
	if size > 32 {
		d.rest = string(raw[32:size])
	}
	if d.IsZero() {
		// sha256:000...0 would read as no digest at all: a tag whose
		// current link holds it as a tag without one. No content hashes
		// to it; it is garbage.
		return Digest{}, fmt.Errorf("invalid digest %s:%.16s...: all zeros", alg, hx)
	}
	return d, nil
}

// unhexTable maps a lower-case hex digit to its value, anything else to 0x10.
const unhexTable = "" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x0a\x0b\x0c\x0d\x0e\x0f\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10" +
	"\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10\x10"

// IsZero reports whether d is the zero Digest (no digest).
func (d Digest) IsZero() bool { return d == Digest{} }

// Algorithm returns the digest's algorithm.
func (d Digest) Algorithm() Algorithm { return d.alg }

// Hex returns the lower-case hex of the sum.
func (d Digest) Hex() string {
	// One allocation: a sweep makes a key of every digest it deletes.
	var buf [2 * 64]byte
	n := hex.Encode(buf[:], d.sum[:])
	n += hex.Encode(buf[n:], []byte(d.rest))
	return string(buf[:n])
}

// String returns "<alg>:<hex>", the form of link files and manifests.
func (d Digest) String() string {
	if d.IsZero() {
		return ""
	}
	return d.alg.String() + ":" + d.Hex()
}

// Compare orders digests by algorithm, then sum.
func (d Digest) Compare(o Digest) int {
	if d.alg != o.alg {
		if d.alg < o.alg {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(d.sum[:], o.sum[:]); c != 0 {
		return c
	}
	return strings.Compare(d.rest, o.rest)
}

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Sum256 returns the sum of a sha256 digest; false for other algorithms
// and the zero Digest.
func (d Digest) Sum256() ([32]byte, bool) {
	return d.sum, d.alg == SHA256 && !d.IsZero()
}

// DigestOfSum256 returns the sha256 digest of sum.
func DigestOfSum256(sum [32]byte) Digest { return Digest{alg: SHA256, sum: sum} }
