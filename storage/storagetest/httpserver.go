package storagetest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the driver NewApp's factory creates
)

// Server is distribution's registry, its HTTP handlers (registry/handlers, the
// code `registry serve` runs) started in-process over a filesystem registry, for
// tests that write and read through the registry's HTTP API with real clients.
type Server struct {
	// Host is host:port of the plain-HTTP listener on loopback, the registry part of a
	// reference (Host + "/repo:tag").
	Host string

	srv *httptest.Server
	app *handlers.App
}

// ServeHTTP starts distribution's registry over the filesystem registry at root (the
// driver's rootdirectory), with deletes enabled (DELETE /v2/<name>/manifests/<reference>
// works), no blob descriptor cache (a restart over the same root sees what a GC
// changed) and no upload purging. It stops when the test ends, or with Close.
func ServeHTTP(t testing.TB, root string) *Server {
	t.Helper()
	config := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem":  configuration.Parameters{"rootdirectory": root},
			"delete":      configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
		// The default of a parsed configuration; zero lists nothing.
		Catalog: configuration.Catalog{MaxEntries: 1000},
	}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, config)
	srv := httptest.NewServer(app)
	s := &Server{Host: strings.TrimPrefix(srv.URL, "http://"), srv: srv, app: app}
	t.Cleanup(func() {
		s.Close()
		cancel()
	})
	return s
}

// Close stops the server; a later ServeHTTP over the same root is a restarted
// registry. Closing twice is harmless.
func (s *Server) Close() {
	s.srv.Close()
	_ = s.app.Shutdown()
}
