package storage

import (
	"strings"
	"testing"
)

func TestParseDigest(t *testing.T) {
	sha256hex := strings.Repeat("ab", 32)
	sha512hex := strings.Repeat("cd", 64)
	for _, tc := range []struct {
		in   string
		ok   bool
		algo Algorithm
	}{
		{"sha256:" + sha256hex, true, SHA256},
		{"sha512:" + sha512hex, true, SHA512},
		{"sha384:" + strings.Repeat("0f", 48), true, SHA384},
		{"sha256:" + strings.ToUpper(sha256hex), false, 0},
		{"sha256:" + sha256hex[:62], false, 0},
		{"sha256:" + sha256hex + "00", false, 0},
		{"md5:" + sha256hex, false, 0},
		{sha256hex, false, 0},
		{"", false, 0},
		{"sha256:" + sha256hex + "\n", false, 0},
	} {
		d, err := ParseDigest(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseDigest(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if d.String() != tc.in || d.Algorithm() != tc.algo {
			t.Errorf("ParseDigest(%q) = %s (%s)", tc.in, d, d.Algorithm())
		}
	}
	a, _ := ParseDigest("sha512:" + sha512hex)
	b, _ := ParseDigest("sha512:" + sha512hex[:126] + "ce")
	if a == b {
		t.Error("sha512 digests differing in their tail compare equal: the tail was truncated")
	}
}

func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32))
	f.Add("sha512:" + strings.Repeat("cd", 64))
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("round trip %q -> %q", s, d.String())
		}
	})
}
