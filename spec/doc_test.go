package spec

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// errorRow matches a row of the error table in protocol.md: it starts with
// "| " and a number, followed by the code's name.
var errorRow = regexp.MustCompile(`^\| (\d+)\s*\|\s*([^|]*?)\s*\|`)

// errorSection is the heading of the part of protocol.md that holds the
// error table; the table's rows are read up to the next heading. Byte
// layout tables elsewhere also have rows that start with a number.
const errorSection = "### Error codes"

// TestErrorTableMatchesCodes checks that the error table in protocol.md
// ("Error codes") lists exactly the entries of Codes, with the same numbers
// and names.
func TestErrorTableMatchesCodes(t *testing.T) {
	f, err := os.Open("protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	type entry struct {
		code uint32
		name string
	}
	doc := make(map[entry]int) // entry -> line number
	sc := bufio.NewScanner(f)
	in, seen := false, false
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			in = strings.TrimSpace(text) == errorSection
			seen = seen || in
			continue
		}
		if !in {
			continue
		}
		m := errorRow.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		n, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil {
			t.Errorf("protocol.md:%d: code %q: %v", line, m[1], err)
			continue
		}
		e := entry{uint32(n), strings.Trim(m[2], "` ")}
		if prev, ok := doc[e]; ok {
			t.Errorf("protocol.md:%d: %d %s already listed on line %d", line, e.code, e.name, prev)
		}
		doc[e] = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !seen {
		t.Fatalf("protocol.md: no %q heading", errorSection)
	}
	if len(doc) == 0 {
		t.Fatalf("protocol.md: no error table rows under %q", errorSection)
	}

	want := make(map[entry]bool, len(Codes))
	for _, c := range Codes {
		e := entry{uint32(c.Code), c.Name}
		want[e] = true
		if _, ok := doc[e]; !ok {
			t.Errorf("protocol.md lacks a row for %d %s", e.code, e.name)
		}
	}
	for e, line := range doc {
		if !want[e] {
			t.Errorf("protocol.md:%d: row %d %s is not in spec.Codes", line, e.code, e.name)
		}
	}
}
