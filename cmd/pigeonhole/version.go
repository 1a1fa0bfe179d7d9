package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"
// (the Dockerfile does); otherwise it comes from the module's build
// information (go install ...@v1.2.3), or is "dev".
var version = ""

// printVersion writes "pigeonhole VERSION (GOVERSION OS/ARCH)".
func printVersion(w io.Writer) {
	v := version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(w, "pigeonhole %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
