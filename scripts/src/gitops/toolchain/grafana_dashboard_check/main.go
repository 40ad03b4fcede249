// Command grafana-dashboard-check checks Grafana dashboard JSON files against Grafana's dashboard schema, as the
// grafana-foundation-sdk generates it from Grafana's own: unknown or mistyped fields at every level, the options
// and field config of the known panel types, and the queries of the known data sources (Prometheus among them).
//
// No dashboard linter is published on the Go module proxy; the SDK's strict decoder and validators are the schema,
// and this is the few lines that run them over files. One line per file: "valid", or the problems found; exit
// status 1 when a file has any.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Set at build time (-ldflags -X main.sdkVersion=...) to the pinned SDK's version.
var sdkVersion = "unknown"

func main() {
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("grafana-dashboard-check, grafana-foundation-sdk %s\n", sdkVersion)
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: grafana-dashboard-check DASHBOARD.json...")
		os.Exit(2)
	}
	// Panel options, field config and data queries are checked only for the types registered here.
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range flag.Args() {
		if err := check(path); err != nil {
			fmt.Printf("%s: %v\n", path, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := board.UnmarshalJSONStrict(raw); problems(err) {
		return err
	}
	if err := board.Validate(); problems(err) {
		return err
	}
	fmt.Printf("%s: valid, %d panels\n", path, len(board.Panels))
	return nil
}

// problems tells whether err reports any: the SDK's strict decoder returns its (typed) list of problems even when
// the list is empty, which as an error interface is not nil.
func problems(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}
