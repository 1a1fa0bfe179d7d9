package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// newLogger returns the relay's logger on w: level is debug, info, warn
// or error; format is text (slog's key=value) or json (one object a
// line, for log shippers).
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q: want text or json", format)
}

// envNotSettings are PIGEONHOLE_ variables that are not flags (besides
// the tests' PIGEONHOLE_TEST_ ones).
var envNotSettings = []string{"PIGEONHOLE_CONFIG"}

// unknownEnv returns a warning for every PIGEONHOLE_ variable in the
// environment that names no flag of fs (a misspelt one would otherwise be
// ignored without a word), with the closest flag where one is close.
func unknownEnv(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, "PIGEONHOLE_")
		if !ok || slices.Contains(envNotSettings, k) || strings.HasPrefix(k, "PIGEONHOLE_TEST_") {
			continue
		}
		name := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		if fs.Lookup(name) != nil {
			continue
		}
		w := fmt.Sprintf("%s is set but names no setting: ignored", k)
		if near := closest(name, names); near != "" {
			w += fmt.Sprintf(" (did you mean PIGEONHOLE_%s?)", strings.ToUpper(strings.ReplaceAll(near, "-", "_")))
		}
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// closest returns the name within edit distance 2 of s, if any.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
