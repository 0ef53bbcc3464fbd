// Package storagetest writes real registry storage with distribution's own code, for tests.
//
// Everything here goes through github.com/distribution/distribution/v3/registry/storage over
// the filesystem driver, so the trees it leaves under <root>/docker/registry/v2 are byte for
// byte what a running registry writes. It is imported only from _test.go files.
//
// What distribution v3.1.2 accepts, and so what this package can write through its API:
//
//   - Docker schema2 manifests, Docker manifest lists, OCI image manifests and OCI image
//     indexes. Manifest puts check that config and layers are linked in the repository
//     (a layer pushed only to another repository is rejected), except foreign layers:
//     schema2 layers of type application/vnd.docker.image.rootfs.foreign.diff.tar.gzip and
//     OCI non-distributable layers, each with http(s) urls, are accepted without the blob.
//     An OCI layer of an ordinary media type with urls must still exist.
//   - Indexes and manifest lists are NOT checked for their children unless the registry runs
//     with EnableValidateImageIndexImagesExist, which New does not set: PushIndex accepts
//     children that are missing or live in another repository.
//   - The OCI subject and artifactType fields are not in distribution's ocischema.Manifest
//     struct, but the stored payload keeps every byte the client sent, so referrers are
//     written with their subject. Distribution neither checks that the subject exists nor
//     returns it from References, and it keeps no referrers index.
//   - Schema1 (application/vnd.docker.distribution.manifest.v1+json and +prettyjws), the
//     withdrawn OCI artifact manifest (application/vnd.oci.artifact.manifest.v1+json) and any
//     other media type are refused by the manifest service, on put and on get. Registries
//     upgraded from v2 still hold them: PutRawManifest writes such payloads straight into the
//     tree, and distribution (Serves, UpstreamGC) then fails on any of them it has to read.
//   - Tags may point at any digest: the tag store does not check that the manifest exists.
package storagetest
