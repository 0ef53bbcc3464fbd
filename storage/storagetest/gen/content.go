package gen

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// Media types written by the generator.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList         = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeSchema1            = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIConfig          = "application/vnd.oci.image.config.v1+json"
	MediaTypeOCILayer           = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCIArtifact        = "application/vnd.oci.artifact.manifest.v1+json"
	MediaTypeOCIEmpty           = "application/vnd.oci.empty.v1+json"
	MediaTypeCosignSig          = "application/vnd.dev.cosign.simplesigning.v1+json"
	ArtifactTypeCosignSig       = "application/vnd.dev.cosign.artifact.sig.v1+json"
	ArtifactTypeSPDX            = "application/spdx+json"
	MediaTypeInToto             = "application/vnd.in-toto+json"
)

// EmptyJSON is the OCI empty descriptor's content; EmptyDigest is its digest.
var (
	EmptyJSON   = []byte("{}")
	EmptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

// Platform is an image platform.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

var platforms = []Platform{
	{"amd64", "linux", ""}, {"arm64", "linux", "v8"}, {"arm", "linux", "v7"},
	{"ppc64le", "linux", ""}, {"s390x", "linux", ""}, {"386", "linux", ""},
}

// dockerDesc is a Docker descriptor (field order as docker writes it).
type dockerDesc struct {
	MediaType string    `json:"mediaType"`
	Size      int64     `json:"size"`
	Digest    string    `json:"digest"`
	URLs      []string  `json:"urls,omitempty"`
	Platform  *Platform `json:"platform,omitempty"`
}

// ociDesc is an OCI descriptor.
type ociDesc struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

type schema2JSON struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        dockerDesc   `json:"config"`
	Layers        []dockerDesc `json:"layers"`
}

type dockerListJSON struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []dockerDesc `json:"manifests"`
}

type ociManifestJSON struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        ociDesc           `json:"config"`
	Layers        []ociDesc         `json:"layers"`
	Subject       *ociDesc          `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type ociIndexJSON struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	Manifests     []ociDesc         `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type ociArtifactJSON struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Blobs        []ociDesc         `json:"blobs"`
	Subject      *ociDesc          `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// contentEpoch anchors the times written inside blobs (image creation
// times), so that blob and manifest bytes depend on the seed alone, never on
// the clock.
var contentEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// content builds blob and manifest bytes from a random source.
type content struct {
	rng *rand.Rand
}

func (c *content) hex(n int) string {
	b := make([]byte, n)
	c.fill(b)
	return hex.EncodeToString(b)
}

func (c *content) fill(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// layer returns 64 to 512 random bytes.
func (c *content) layer() []byte {
	b := make([]byte, 64+c.rng.IntN(449))
	c.fill(b)
	return b
}

// created returns a creation time in the 90 days before contentEpoch.
func (c *content) created() string {
	return contentEpoch.Add(-time.Duration(c.rng.Int64N(int64(90 * 24 * time.Hour)))).Format(time.RFC3339)
}

// config returns an image configuration naming the layers' diff IDs.
func (c *content) config(p Platform, layers int) []byte {
	diffIDs := make([]string, layers)
	for i := range diffIDs {
		diffIDs[i] = "sha256:" + c.hex(32)
	}
	cfg := map[string]any{
		"architecture": p.Architecture,
		"os":           p.OS,
		"created":      c.created(),
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BUILD_ID=" + c.hex(6)},
			"Cmd":        []string{"/app/server"},
			"WorkingDir": "/app",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	if p.Variant != "" {
		cfg["variant"] = p.Variant
	}
	b, _ := json.Marshal(cfg) // map keys sort: deterministic
	return b
}

// signaturePayload returns a cosign simple-signing payload.
func (c *content) signaturePayload(subject, repo string) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":"registry.example.com/%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":{"nonce":"%s"}}`, repo, subject, c.hex(8))
}

// sbom returns a small SPDX document.
func (c *content) sbom(subject string) []byte {
	return fmt.Appendf(nil, `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"%s","documentNamespace":"https://example.com/spdx/%s","packages":[{"name":"musl","versionInfo":"1.2.%d"}]}`, subject, c.hex(8), c.rng.IntN(9))
}

// intoto returns a small in-toto statement.
func (c *content) intoto(subject string) []byte {
	return fmt.Appendf(nil, `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2","subject":[{"name":"_","digest":{"sha256":"%s"}}],"predicate":{"builder":{"id":"%s"}}}`, subject[len("sha256:"):], c.hex(8))
}

func marshal(v any, indent bool) []byte {
	var b []byte
	var err error
	if indent {
		// Docker and distribution's own builders indent with three spaces.
		b, err = json.MarshalIndent(v, "", "   ")
	} else {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		err = enc.Encode(v)
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	if err != nil {
		panic(err) // only plain structs are marshalled
	}
	return b
}

// schema1 returns a signed schema1 manifest (prettyjws) for the given
// layers, top layer first, with a signature of the right shape that no key
// verifies.
func (c *content) schema1(name, tag string, p Platform, blobSums []string) []byte {
	type fsLayer struct {
		BlobSum string `json:"blobSum"`
	}
	type history struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	m := struct {
		SchemaVersion int       `json:"schemaVersion"`
		Name          string    `json:"name"`
		Tag           string    `json:"tag"`
		Architecture  string    `json:"architecture"`
		FSLayers      []fsLayer `json:"fsLayers"`
		History       []history `json:"history"`
	}{SchemaVersion: 1, Name: name, Tag: tag, Architecture: p.Architecture}
	ids := make([]string, len(blobSums)+1)
	for i := range ids {
		ids[i] = c.hex(32)
	}
	for i, b := range blobSums {
		m.FSLayers = append(m.FSLayers, fsLayer{BlobSum: b})
		v1 := fmt.Sprintf(`{"id":"%s","parent":"%s","created":"%s","container_config":{"Cmd":["/bin/sh -c #(nop) ADD file:%s in /"]}}`, ids[i], ids[i+1], c.created(), c.hex(16))
		if i == 0 {
			v1 = fmt.Sprintf(`{"architecture":"%s","os":"%s","id":"%s","parent":"%s","created":"%s","config":{"Cmd":["/bin/sh"]}}`, p.Architecture, p.OS, ids[i], ids[i+1], c.created())
		}
		m.History = append(m.History, history{V1Compatibility: v1})
	}
	payload := marshal(m, true)
	// libtrust's pretty signature: the payload minus its closing "\n}",
	// then the signatures, then the tail.
	formatLength := len(payload) - 2
	tail := payload[formatLength:]
	b64 := base64.RawURLEncoding
	protected := b64.EncodeToString(fmt.Appendf(nil, `{"formatLength":%d,"formatTail":"%s","time":"%s"}`, formatLength, b64.EncodeToString(tail), c.created()))
	rnd := func(n int) string {
		b := make([]byte, n)
		c.fill(b)
		return b64.EncodeToString(b)
	}
	var buf bytes.Buffer
	buf.Write(payload[:formatLength])
	fmt.Fprintf(&buf, ",\n   \"signatures\": [\n      {\n         \"header\": {\n            \"jwk\": {\n               \"crv\": \"P-256\",\n               \"kid\": \"%s\",\n               \"kty\": \"EC\",\n               \"x\": \"%s\",\n               \"y\": \"%s\"\n            },\n            \"alg\": \"ES256\"\n         },\n         \"signature\": \"%s\",\n         \"protected\": \"%s\"\n      }\n   ]",
		c.kid(), rnd(32), rnd(32), rnd(64), protected)
	buf.Write(tail)
	return buf.Bytes()
}

// kid returns a libtrust-style key id (12 groups of 4 base32 characters).
func (c *content) kid() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 0, 59)
	for i := range 12 {
		if i > 0 {
			b = append(b, ':')
		}
		for range 4 {
			b = append(b, alphabet[c.rng.IntN(len(alphabet))])
		}
	}
	return string(b)
}
