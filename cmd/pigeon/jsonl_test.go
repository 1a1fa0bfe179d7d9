package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pigeonhole/pigeonhole/cmd/internal/completion"
)

// jsonLines checks the JSON Lines output of a -json command in FILE
// (stdout, say): every line must be one JSON object, and one of them must
// meet every condition: KEY=VALUE (the field's value, numbers and bools
// written as Go formats them, arrays and objects as JSON), KEY~REGEXP, or
// !KEY (no such field). With "!" no line meets them all.
//
//	jsonl FILE [KEY=VALUE | KEY~REGEXP | !KEY]...
func jsonLines(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: jsonl FILE [KEY=VALUE | KEY~REGEXP | !KEY]...")
	}
	var objs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(ts.ReadFile(args[0]), "\n"), "\n") {
		if line == "" && i == 0 {
			break // no output at all
		}
		var o map[string]any
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			ts.Fatalf("line %d of %s is not a JSON object: %v\n%s", i+1, args[0], err, line)
		}
		objs = append(objs, o)
	}
	conds := args[1:]
	for _, o := range objs {
		if matches(ts, o, conds) {
			if neg {
				ts.Fatalf("a line of %s meets %q", args[0], conds)
			}
			return
		}
	}
	if !neg && len(conds) > 0 {
		ts.Fatalf("no line of %s meets %q", args[0], conds)
	}
}

// matches reports whether o meets every condition.
func matches(ts *testscript.TestScript, o map[string]any, conds []string) bool {
	for _, c := range conds {
		if key, ok := strings.CutPrefix(c, "!"); ok {
			if _, has := o[key]; has {
				return false
			}
			continue
		}
		i := strings.IndexAny(c, "=~")
		if i < 0 {
			ts.Fatalf("bad condition %q", c)
		}
		v, has := o[c[:i]]
		if !has {
			return false
		}
		s := jsonText(v)
		if c[i] == '=' {
			if s != c[i+1:] {
				return false
			}
			continue
		}
		re, err := regexp.Compile(c[i+1:])
		ts.Check(err)
		if !re.MatchString(s) {
			return false
		}
	}
	return true
}

// jsonText writes a decoded JSON value as a condition compares it.
func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool, nil:
		return fmt.Sprint(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestJSONFlagCompletes checks that the commands with -json declare it in
// the command table, so shell completion offers it, as a bool flag.
func TestJSONFlagCompletes(t *testing.T) {
	seen := 0
	for _, cmd := range completionSpec().Subs {
		if !slices.Contains([]string{"recv", "listen", "devices", "id"}, cmd.Name) {
			continue
		}
		seen++
		i := slices.IndexFunc(cmd.Flags, func(f completion.Flag) bool { return f.Name == "json" })
		if i < 0 {
			t.Errorf("completion of %q does not offer -json; it has %v", cmd.Name, cmd.Flags)
		} else if cmd.Flags[i].Value || cmd.Flags[i].Help != jsonUsage {
			t.Errorf("completion of %q: -json is %+v, want a bool flag with the shared help", cmd.Name, cmd.Flags[i])
		}
	}
	if seen != 4 {
		t.Errorf("found %d of recv, listen, devices and id in the command table", seen)
	}
}
