package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
)

// applyConfig fills every flag not given on the command line, first from
// the environment (PIGEONHOLE_ + the flag name in upper case with '-' as
// '_'), then from the config file (lines "name = value"; '#' starts a
// comment). So the precedence is: flags, environment, file, defaults.
func applyConfig(fs *flag.FlagSet, file string) error {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fileVals := map[string]string{}
	if file != "" {
		var err error
		fileVals, err = readConfigFile(file)
		if err != nil {
			return err
		}
		for name := range fileVals {
			if fs.Lookup(name) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", file, name)
			}
		}
	}
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		env := "PIGEONHOLE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("%s: %w", env, err)
			}
			return
		}
		if v, ok := fileVals[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = fmt.Errorf("config file %s: %s: %w", file, f.Name, err)
			}
		}
	})
	return firstErr
}

func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	vals := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want \"name = value\"", path, n)
		}
		vals[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return vals, nil
}
