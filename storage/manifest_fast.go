package storage

import (
	"bytes"
	"strconv"
)

// decodeFast fills m from b as json.Unmarshal(b, m) would, for the
// manifests clients write, in a fraction of its time (a walk parses every
// manifest of the registry: json.Unmarshal was 18% of a warm dry run's CPU,
// and json.Valid alone is half of json.Unmarshal). It checks the whole
// document's grammar as it goes, and declines (false, m's content then
// undefined), leaving it to json.Unmarshal, whatever is not valid JSON or
// that it does not reproduce exactly: a top level that is not an object,
// a key or a kept string with an escape or a byte outside ASCII
// (json.Unmarshal unescapes, replaces invalid UTF-8 and folds keys by
// Unicode rules), a null or a value of another type where a field is, a
// field given twice (json.Unmarshal merges the second into the first), a
// schemaVersion that is not a plain integer, nesting deeper than
// maxFastDepth. Keys match fields without regard to ASCII case, as
// json.Unmarshal's do; the values of other keys are checked and skipped.
// FuzzDecodeFast holds it to json.Valid and json.Unmarshal.
func decodeFast(b []byte, m *anyManifest) bool {
	d := fastDecoder{b: b}
	ok := d.fields(manifestFields, func(f int) bool {
		switch f {
		case 0:
			v, ok := d.int()
			m.SchemaVersion = &v
			return ok
		case 1:
			return d.str(&m.MediaType)
		case 2, 6:
			var x descriptor
			if !d.descriptor(&x) {
				return false
			}
			if f == 2 {
				m.Config = &x
			} else {
				m.Subject = &x
			}
			return true
		case 3:
			return d.descriptors(&m.Layers)
		case 4:
			return d.descriptors(&m.Manifests)
		case 5:
			return d.descriptors(&m.Blobs)
		default:
			m.FSLayers = make([]struct {
				Sum string `json:"blobSum"`
			}, 0)
			return d.array(func() bool {
				var sum string
				ok := d.fields(fsLayerFields, func(int) bool { return d.str(&sum) })
				m.FSLayers = append(m.FSLayers, struct {
					Sum string `json:"blobSum"`
				}{sum})
				return ok
			})
		}
	})
	d.ws()
	return ok && d.i == len(d.b)
}

// manifestFields are anyManifest's JSON names, in decodeFast's order.
var manifestFields = [][]byte{[]byte("schemaVersion"), []byte("mediaType"), []byte("config"), []byte("layers"), []byte("manifests"), []byte("blobs"), []byte("subject"), []byte("fsLayers")}

// descriptorFields are descriptor's JSON names.
var descriptorFields = [][]byte{[]byte("mediaType"), []byte("digest"), []byte("urls")}

// fsLayerFields are the JSON names of a schema 1 manifest's fsLayers entry.
var fsLayerFields = [][]byte{[]byte("blobSum")}

// maxFastDepth is the deepest nesting decodeFast reads (json.Unmarshal's
// limit is 10000; manifests nest a few levels).
const maxFastDepth = 100

// fastDecoder reads JSON for decodeFast, checking the grammar of what it
// reads and skips.
type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// fields reads an object whose fields are names, matched without regard
// to ASCII case: read is called with the field's index, the decoder at its
// value, which read must read. The values of other keys are checked and
// skipped; a field met twice is declined.
func (d *fastDecoder) fields(names [][]byte, read func(f int) bool) bool {
	var seen uint
	return d.object(func(key []byte) bool {
		for f, name := range names {
			if !bytes.EqualFold(key, name) {
				continue
			}
			if seen&(1<<f) != 0 {
				return false
			}
			seen |= 1 << f
			return read(f)
		}
		return d.skip()
	})
}

// object reads an object, calling field for each key with the decoder at
// its value, which field must read.
func (d *fastDecoder) object(field func(key []byte) bool) bool {
	return d.seq('{', '}', func() bool {
		key, ok := d.raw()
		if !ok || d.peek() != ':' {
			return false
		}
		d.i++
		return field(key)
	})
}

// array reads an array, calling elem at each element, which elem must read.
func (d *fastDecoder) array(elem func() bool) bool {
	return d.seq('[', ']', elem)
}

// seq reads open, items separated by commas, and end: item reads each.
func (d *fastDecoder) seq(open, end byte, item func() bool) bool {
	if d.peek() != open {
		return false
	}
	d.i++
	if d.peek() == end {
		d.i++
		return true
	}
	for {
		if !item() {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case end:
			d.i++
			return true
		default:
			return false
		}
	}
}

// raw reads a string without escapes, all of it printable ASCII, and
// returns its bytes.
func (d *fastDecoder) raw() ([]byte, bool) {
	if d.peek() != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c >= 0x80 || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

func (d *fastDecoder) str(s *string) bool {
	b, ok := d.raw()
	*s = string(b)
	return ok
}

// int reads a number written as an integer (json.Unmarshal refuses a
// fraction or an exponent for an int) that fits an int.
func (d *fastDecoder) int() (int, bool) {
	d.ws()
	start := d.i
	if !d.number() {
		return 0, false
	}
	v, err := strconv.Atoi(string(d.b[start:d.i]))
	return v, err == nil
}

// number reads a number as JSON writes it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() bool {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

func (d *fastDecoder) descriptor(x *descriptor) bool {
	return d.fields(descriptorFields, func(f int) bool {
		switch f {
		case 0:
			return d.str(&x.MediaType)
		case 1:
			return d.str(&x.Digest)
		default:
			x.URLs = []string{}
			return d.array(func() bool {
				var s string
				ok := d.str(&s)
				x.URLs = append(x.URLs, s)
				return ok
			})
		}
	})
}

// descriptors reads an array of descriptors into a new slice (empty, not
// nil, for [], as json.Unmarshal makes it).
func (d *fastDecoder) descriptors(list *[]descriptor) bool {
	*list = []descriptor{}
	return d.array(func() bool {
		var x descriptor
		ok := d.descriptor(&x)
		*list = append(*list, x)
		return ok
	})
}

// skip reads and checks any value, at the depth of a field of an object
// decodeFast reads.
func (d *fastDecoder) skip() bool { return d.value(2) }

// value reads and checks any value at depth (the top level's object is 1).
func (d *fastDecoder) value(depth int) bool {
	switch c := d.peek(); c {
	case '"':
		return d.skipString()
	case '{', '[':
		if depth > maxFastDepth {
			return false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		return d.seq(c, end, func() bool {
			if c == '{' {
				if d.peek() != '"' || !d.skipString() || d.peek() != ':' {
					return false
				}
				d.i++
			}
			return d.value(depth + 1)
		})
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.number()
}

func (d *fastDecoder) literal(s string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(s)) {
		return false
	}
	d.i += len(s)
	return true
}

// skipString reads and checks a string: no control character, escapes
// among JSON's; any other byte goes (json.Valid takes invalid UTF-8).
func (d *fastDecoder) skipString() bool {
	d.i++ // the opening quote
	for d.i < len(d.b) {
		c := d.b[d.i]
		d.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if d.i >= len(d.b) {
				return false
			}
			e := d.b[d.i]
			d.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if d.i+4 > len(d.b) {
					return false
				}
				for _, h := range d.b[d.i : d.i+4] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				d.i += 4
			default:
				return false
			}
		}
	}
	return false
}
