package storage

import (
	"fmt"
	"slices"
	"strings"
)

// The layout, relative to a store's root (the registry's rootdirectory):
//
//	docker/registry/v2
//	├── blobs/<alg>/<first 2 hex>/<hex>/data                    content
//	└── repositories/<name...>
//	    ├── _layers/<alg>/<hex>/link                            blobs the repo may serve
//	    ├── _manifests/revisions/<alg>/<hex>/link               manifests the repo holds
//	    ├── _manifests/tags/<tag>/current/link                  what the tag points at now
//	    ├── _manifests/tags/<tag>/index/<alg>/<hex>/link        what the tag ever held
//	    └── _uploads/<id>/{data,startedat,hashstates/<alg>/<n>} uploads in flight
//
// Paths are slash-separated keys without a leading slash. The functions below
// are our copy of distribution's paths.go, which is internal to it.

// V2 is the folder every key of the layout starts with.
const V2 = "docker/registry/v2"

// Fixed names of the layout.
const (
	dirBlobs        = "blobs"
	dirRepositories = "repositories"
	dirLayers       = "_layers"
	dirManifests    = "_manifests"
	dirUploads      = "_uploads"
	dirRevisions    = "revisions"
	dirTags         = "tags"
	dirCurrent      = "current"
	dirIndex        = "index"
	fileLink        = "link"
	fileData        = "data"
	fileStartedAt   = "startedat"
)

// BlobDataName is the name of a blob's data file in its folder.
const BlobDataName = fileData

// BlobsDir is the root of the blob store.
func BlobsDir() string { return V2 + "/" + dirBlobs }

// BlobAlgDir holds the blobs of one algorithm.
func BlobAlgDir(a Algorithm) string { return BlobsDir() + "/" + a.String() }

// BlobPrefixDir holds the blobs whose hex starts with the two digits prefix.
func BlobPrefixDir(a Algorithm, prefix string) string { return BlobAlgDir(a) + "/" + prefix }

// BlobDir is a blob's folder.
func BlobDir(d Digest) string {
	hx := d.Hex()
	return BlobPrefixDir(d.alg, hx[:2]) + "/" + hx
}

// BlobDataPath is the file holding a blob's content.
func BlobDataPath(d Digest) string {
	hx := d.Hex()
	return V2 + "/" + dirBlobs + "/" + d.alg.String() + "/" + hx[:2] + "/" + hx + "/" + fileData
}

// RepositoriesDir is the root of the repository tree.
func RepositoriesDir() string { return V2 + "/" + dirRepositories }

// RepoDir is a repository's folder.
func RepoDir(repo string) string { return RepositoriesDir() + "/" + repo }

// LayersDir holds a repository's layer links.
func LayersDir(repo string) string { return RepoDir(repo) + "/" + dirLayers }

// LayerLinkPath is the link that lets repo serve blob d.
func LayerLinkPath(repo string, d Digest) string {
	// One concatenation: a sweep makes a key of every link it deletes.
	return V2 + "/" + dirRepositories + "/" + repo + "/" + dirLayers + "/" + d.alg.String() + "/" + d.Hex() + "/" + fileLink
}

// ManifestsDir holds a repository's revisions and tags.
func ManifestsDir(repo string) string { return RepoDir(repo) + "/" + dirManifests }

// RevisionsDir holds a repository's manifest revision links.
func RevisionsDir(repo string) string { return ManifestsDir(repo) + "/" + dirRevisions }

// RevisionLinkPath is the link that makes manifest d part of repo.
func RevisionLinkPath(repo string, d Digest) string {
	return V2 + "/" + dirRepositories + "/" + repo + "/" + dirManifests + "/" + dirRevisions + "/" + d.alg.String() + "/" + d.Hex() + "/" + fileLink
}

// TagsDir holds a repository's tags.
func TagsDir(repo string) string { return ManifestsDir(repo) + "/" + dirTags }

// TagDir is one tag's folder; deleting the tag deletes it whole.
func TagDir(repo, tag string) string { return TagsDir(repo) + "/" + tag }

// TagCurrentPath is the link to the manifest a tag points at now.
func TagCurrentPath(repo, tag string) string {
	return TagDir(repo, tag) + "/" + dirCurrent + "/" + fileLink
}

// TagIndexDir holds the history of a tag.
func TagIndexDir(repo, tag string) string { return TagDir(repo, tag) + "/" + dirIndex }

// TagIndexLinkPath is the history entry of tag for manifest d.
func TagIndexLinkPath(repo, tag string, d Digest) string {
	return V2 + "/" + dirRepositories + "/" + repo + "/" + dirManifests + "/" + dirTags + "/" + tag + "/" + dirIndex + "/" + d.alg.String() + "/" + d.Hex() + "/" + fileLink
}

// UploadsDir holds a repository's uploads in flight.
func UploadsDir(repo string) string { return RepoDir(repo) + "/" + dirUploads }

// UploadDir is one upload's folder.
func UploadDir(repo, id string) string { return UploadsDir(repo) + "/" + id }

// UploadStartedAtPath holds the RFC 3339 start time of an upload.
func UploadStartedAtPath(repo, id string) string { return UploadDir(repo, id) + "/" + fileStartedAt }

// IsRepoMarker reports whether a folder of this name inside a directory makes
// that directory a repository.
func IsRepoMarker(name string) bool {
	return name == dirLayers || name == dirManifests || name == dirUploads
}

// IsFixedDir reports whether dir is one of the layout's fixed folders, which
// are never removed even when empty: v2, blobs, blobs/<alg>, blobs/<alg>/<xx>,
// repositories, and a repository's _layers/<alg>, _manifests/revisions/<alg>,
// _manifests/tags and the folders above them.
func IsFixedDir(dir string) bool {
	if dir == V2 || !strings.HasPrefix(dir, V2+"/") {
		return true // the layout's root and anything outside it
	}
	// Split on the stack: a sweep asks this for every key it deletes.
	var buf [16]string
	rest := buf[:0]
	for s := dir[len(V2)+1:]; ; {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			rest = append(rest, s)
			break
		}
		rest, s = append(rest, s[:i]), s[i+1:]
	}
	switch rest[0] {
	case dirBlobs:
		return len(rest) <= 3
	case dirRepositories:
		for i, c := range rest {
			if !IsRepoMarker(c) {
				continue
			}
			tail := rest[i:]
			switch tail[0] {
			case dirLayers:
				return len(tail) <= 2
			case dirManifests:
				return len(tail) == 1 || len(tail) == 2 || len(tail) == 3 && tail[1] == dirRevisions
			case dirUploads:
				return len(tail) == 1
			}
		}
		return true // repositories and namespace folders: compaction decides
	}
	return true
}

// KeyKind tells what a key of the layout is.
type KeyKind uint8

// The kinds of key ParseKey recognises.
const (
	KeyUnknown      KeyKind = iota // not part of the layout: foreign, left alone
	KeyBlobData                    // blobs/<alg>/<xx>/<hex>/data
	KeyLayerLink                   // <repo>/_layers/<alg>/<hex>/link
	KeyRevisionLink                // <repo>/_manifests/revisions/<alg>/<hex>/link
	KeyTagCurrent                  // <repo>/_manifests/tags/<tag>/current/link
	KeyTagIndex                    // <repo>/_manifests/tags/<tag>/index/<alg>/<hex>/link
	KeyUploadFile                  // <repo>/_uploads/<id>/...
)

// Key is a parsed key of the layout.
type Key struct {
	Kind   KeyKind
	Repo   string // repository name, for keys under repositories/
	Tag    string // for tag keys
	Upload string // upload id, for upload files
	File   string // path inside the upload folder, for upload files
	Digest Digest // for blobs and links
}

// ParseKey classifies a key relative to the store root. A key outside the
// layout, one with an empty, "." or ".." segment anywhere (a filesystem would
// resolve it elsewhere), or one whose digest is malformed, is an error naming
// the key; callers leave such files alone. Repository and tag names are not
// checked against their grammars here (see ValidRepoName, ValidTag): a
// repository with a foreign name still references blobs, and a walker must
// see it.
func ParseKey(key string) (Key, error) {
	if !strings.HasPrefix(key, V2+"/") {
		return Key{}, fmt.Errorf("%s: outside %s", key, V2)
	}
	// Split on the stack: a sweep parses every key it deletes, a flat walk
	// every key it lists.
	var buf [24]string
	parts := buf[:0]
	for rest := key[len(V2)+1:]; ; {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			parts = append(parts, rest)
			break
		}
		parts, rest = append(parts, rest[:i]), rest[i+1:]
	}
	if slices.ContainsFunc(parts, notPlain) {
		return Key{}, fmt.Errorf("%s: empty or dot segment", key)
	}
	switch parts[0] {
	case dirBlobs:
		if len(parts) != 5 || parts[4] != fileData {
			return Key{}, fmt.Errorf("%s: not a blob data file", key)
		}
		d, err := DigestFromHex(parts[1], parts[3])
		if err != nil {
			return Key{}, fmt.Errorf("%s: %w", key, err)
		}
		if parts[2] != parts[3][:2] {
			return Key{}, fmt.Errorf("%s: prefix folder %q does not match digest", key, parts[2])
		}
		return Key{Kind: KeyBlobData, Digest: d}, nil
	case dirRepositories:
		return parseRepoKey(key, parts[1:])
	}
	return Key{}, fmt.Errorf("%s: not in blobs or repositories", key)
}

// notPlain tells a path segment that is empty, "." or "..": one that names
// no file of its own, which a filesystem would resolve elsewhere.
func notPlain(seg string) bool { return seg == "" || seg == "." || seg == ".." }

func parseRepoKey(key string, parts []string) (Key, error) {
	i := 0
	for i < len(parts) && !IsRepoMarker(parts[i]) {
		i++
	}
	if i == 0 || i == len(parts) {
		return Key{}, fmt.Errorf("%s: no repository folder (_manifests, _layers, _uploads)", key)
	}
	// The repository name and an upload's file are runs of the key itself.
	start := len(V2) + 1 + len(dirRepositories) + 1
	n := i - 1
	for _, c := range parts[:i] {
		n += len(c)
	}
	repo := key[start : start+n]
	tail := parts[i:]
	link := func(kind KeyKind, alg, hx, file string) (Key, error) {
		if file != fileLink {
			return Key{}, fmt.Errorf("%s: not a link file", key)
		}
		d, err := DigestFromHex(alg, hx)
		if err != nil {
			return Key{}, fmt.Errorf("%s: %w", key, err)
		}
		return Key{Kind: kind, Repo: repo, Digest: d}, nil
	}
	switch {
	case tail[0] == dirLayers && len(tail) == 4:
		return link(KeyLayerLink, tail[1], tail[2], tail[3])
	case tail[0] == dirManifests && len(tail) == 5 && tail[1] == dirRevisions:
		return link(KeyRevisionLink, tail[2], tail[3], tail[4])
	case tail[0] == dirManifests && len(tail) >= 4 && tail[1] == dirTags:
		tag := tail[2]
		if len(tail) == 5 && tail[3] == dirCurrent && tail[4] == fileLink {
			return Key{Kind: KeyTagCurrent, Repo: repo, Tag: tag}, nil
		}
		if len(tail) == 7 && tail[3] == dirIndex {
			k, err := link(KeyTagIndex, tail[4], tail[5], tail[6])
			k.Tag = tag
			return k, err
		}
	case tail[0] == dirUploads && len(tail) >= 3:
		file := key[start+n+1+len(dirUploads)+1+len(tail[1])+1:]
		return Key{Kind: KeyUploadFile, Repo: repo, Upload: tail[1], File: file}, nil
	}
	return Key{}, fmt.Errorf("%s: not a file of the repository layout", key)
}
