package main

// The Mozilla root certificates, compiled in and used only where the system
// has none: in the container image (built from scratch by cmd/regsweep-image,
// with no /etc/ssl), regsweep still verifies S3's TLS certificates. A system
// with its own roots (a CA bundle in /etc/ssl, SSL_CERT_FILE, SSL_CERT_DIR)
// uses those.
import _ "golang.org/x/crypto/x509roots/fallback"
