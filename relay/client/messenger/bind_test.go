package messenger

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goOnly is the Go surface: exported names gomobile need not bind (they
// take a context.Context, uint32 ids, relay/client structs or variadic
// slices). Everything else exported is the binding surface, and
// TestBindingSurface holds it to gobind's rules. The package doc says
// the same; keep the two in step.
var goOnly = map[string]bool{
	"Messenger": true, "Open": true, "OpenStore": true, "Register": true,
	"Link": true, "StartLink": true,
	"Store": true, "Identity": true, "Sessions": true, "SenderKeys": true, "PreKeys": true, "Records": true, "Sealed": true, "GroupStates": true,
	"Trust": true, "TrustStates": true,
	"DirStore": true, "OpenDir": true, "UnreachableError": true, "AnnounceError": true, "AnnounceFailure": true,
	"KV": true, "KVStore": true, "OpenKV": true, "OpenStorage": true, "RegisterStorage": true,
	"StorageLink": true, "StartLinkStorage": true,
	"ErrIdentityChanged": true, // an alias of e2e's error value: type error, bindable, but from another package
}

// mustBind are names an app needs from the binding: TestBindingSurface
// fails if one is missing or listed in goOnly, so the surface cannot
// lose them by being declared Go-only.
var mustBind = []string{
	"Mobile", "OpenMobile", "RegisterMobile", "StartMobileLink", "MobileLink",
	"MobileStore", "MobileTxn", "OpenMobileStore", "RegisterMobileStore", "StartMobileLinkStore",
	"Config", "Content", "SendResult", "Handler", "Message", "Receipt", "Typing", "GroupChange", "DeviceChange",
	"LinkCheckCode",
}

// TestBindingSurface type-checks the package (export data from the
// build cache, as go/packages does) and fails on any exported name of
// the binding surface whose type gobind cannot bind
// (https://pkg.go.dev/golang.org/x/mobile/cmd/gobind, "Type
// restrictions"): only signed integers, floats, strings, booleans, byte
// slices, error, and this package's structs (by pointer) and interfaces;
// functions return at most one such value, or one and an error; no
// channels, maps, generics, unsigned integers or other packages' types.
// The Android and iOS toolchains are not on the CI machine, so this is
// the check that a binding would build.
func TestBindingSurface(t *testing.T) {
	pkg := typeCheck(t)
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	scope := pkg.Scope()
	bound := 0
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() || goOnly[name] {
			continue
		}
		bound++
		switch o := obj.(type) {
		case *types.Func:
			checkSig(pkg, name, o.Type().(*types.Signature), bad)
		case *types.Var:
			if !supported(pkg, o.Type()) {
				bad("var %s has type %s", name, o.Type())
			}
		case *types.Const:
			if b, ok := o.Type().(*types.Basic); !ok || !basicOK(b) {
				bad("const %s has type %s", name, o.Type())
			}
		case *types.TypeName:
			checkType(pkg, o, bad)
		}
	}
	if bound < 10 {
		t.Fatalf("only %d names on the binding surface: is goOnly too wide?", bound)
	}
	for _, p := range problems {
		t.Error(p)
	}
	for _, name := range mustBind {
		if goOnly[name] || scope.Lookup(name) == nil || !scope.Lookup(name).Exported() {
			t.Errorf("%s is not on the binding surface", name)
		}
	}
	// The Go-only names must exist, so the list does not rot.
	for name := range goOnly {
		if scope.Lookup(name) == nil {
			t.Errorf("goOnly names %s, which the package does not declare", name)
		}
	}
}

func checkType(pkg *types.Package, tn *types.TypeName, bad func(string, ...any)) {
	named, ok := tn.Type().(*types.Named)
	if !ok || tn.IsAlias() {
		bad("type %s is an alias", tn.Name())
		return
	}
	if named.TypeParams().Len() > 0 {
		bad("type %s is generic", tn.Name())
	}
	switch u := named.Underlying().(type) {
	case *types.Struct:
		for i := range u.NumFields() {
			f := u.Field(i)
			if f.Embedded() && f.Exported() {
				bad("struct %s embeds %s", tn.Name(), f.Type())
			}
			if f.Exported() && !supported(pkg, f.Type()) {
				bad("field %s.%s has type %s", tn.Name(), f.Name(), f.Type())
			}
		}
		ms := types.NewMethodSet(types.NewPointer(named))
		for i := range ms.Len() {
			m := ms.At(i).Obj().(*types.Func)
			if m.Exported() {
				checkSig(pkg, tn.Name()+"."+m.Name(), m.Type().(*types.Signature), bad)
			}
		}
	case *types.Interface:
		for i := range u.NumMethods() {
			m := u.Method(i)
			if m.Exported() {
				checkSig(pkg, tn.Name()+"."+m.Name(), m.Type().(*types.Signature), bad)
			}
		}
	default:
		bad("type %s is a %s: gobind binds only structs and interfaces", tn.Name(), u)
	}
}

func checkSig(pkg *types.Package, name string, sig *types.Signature, bad func(string, ...any)) {
	if sig.TypeParams().Len() > 0 {
		bad("%s is generic", name)
	}
	if sig.Variadic() {
		bad("%s is variadic", name)
	}
	for i := range sig.Params().Len() {
		if p := sig.Params().At(i); !supported(pkg, p.Type()) || isError(p.Type()) {
			bad("%s: parameter %s has type %s", name, p.Name(), p.Type())
		}
	}
	res := sig.Results()
	switch res.Len() {
	case 0:
	case 1:
		if !supported(pkg, res.At(0).Type()) {
			bad("%s returns %s", name, res.At(0).Type())
		}
	case 2:
		if !supported(pkg, res.At(0).Type()) || isError(res.At(0).Type()) || !isError(res.At(1).Type()) {
			bad("%s returns (%s, %s): two results must be a value and an error", name, res.At(0).Type(), res.At(1).Type())
		}
	default:
		bad("%s returns %d results", name, res.Len())
	}
}

func isError(t types.Type) bool { return types.Identical(t, types.Universe.Lookup("error").Type()) }

func basicOK(b *types.Basic) bool {
	switch b.Kind() {
	case types.Bool, types.String, types.Int, types.Int8, types.Int16, types.Int32, types.Int64,
		types.Float32, types.Float64,
		types.UntypedBool, types.UntypedString, types.UntypedInt, types.UntypedFloat, types.UntypedRune:
		return true
	}
	return false
}

// supported reports whether gobind can pass a value of type t.
func supported(pkg *types.Package, t types.Type) bool {
	if isError(t) {
		return true
	}
	switch t := t.(type) {
	case *types.Basic:
		return basicOK(t)
	case *types.Slice:
		b, ok := t.Elem().(*types.Basic)
		return ok && b.Kind() == types.Byte
	case *types.Pointer:
		n, ok := t.Elem().(*types.Named)
		if !ok || n.Obj().Pkg() != pkg || !n.Obj().Exported() {
			return false
		}
		_, isStruct := n.Underlying().(*types.Struct)
		return isStruct && !goOnly[n.Obj().Name()]
	case *types.Named:
		if t.Obj().Pkg() != pkg || !t.Obj().Exported() || goOnly[t.Obj().Name()] {
			return false
		}
		_, isIface := t.Underlying().(*types.Interface)
		return isIface
	}
	return false // maps, channels, arrays, other slices, funcs, unnamed structs
}

// typeCheck type-checks this package's non-test files, importing its
// dependencies from the export data "go list -export" names.
func typeCheck(t *testing.T) *types.Package {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Export", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})
	conf := types.Config{Importer: imp}
	pkg, err := conf.Check("github.com/pigeonhole/pigeonhole/relay/client/messenger", fset, files, nil)
	if err != nil {
		t.Fatalf("type-check: %v", err)
	}
	return pkg
}
