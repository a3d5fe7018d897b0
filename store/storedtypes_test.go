package store

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store/storetest"
)

// storedTypes are the records the store encodes, nested types aside (the
// manifest follows the fields to those). TestStoredTypesAreDerived holds
// the list to the code, so a new stored type cannot miss the manifest.
var storedTypes = []reflect.Type{
	reflect.TypeFor[engine.Member](), reflect.TypeFor[engine.Purchase](), reflect.TypeFor[engine.Refund](),
	reflect.TypeFor[engine.Redemption](), reflect.TypeFor[engine.Adjustment](), reflect.TypeFor[engine.LedgerEntry](),
	reflect.TypeFor[engine.Lot](), reflect.TypeFor[engine.MetricEntry](), reflect.TypeFor[engine.RulesVersion](),
	reflect.TypeFor[engine.JobRun](), reflect.TypeFor[engine.Event](), reflect.TypeFor[engine.AnalyticsSummary](),
	reflect.TypeFor[engine.Coupon](), reflect.TypeFor[engine.RewardCount](),
	reflect.TypeFor[engine.Webhook](), reflect.TypeFor[engine.Delivery](), reflect.TypeFor[engine.Transfer](),
	reflect.TypeFor[account](), reflect.TypeFor[metricSum](),
}

// TestStoredTypesRoundTrip: every engine record the store keeps is one the
// conformance suite writes with every field set and reads back, on every
// store, so a field one store drops cannot pass.
func TestStoredTypesRoundTrip(t *testing.T) {
	for _, typ := range storedTypes {
		if typ.PkgPath() == reflect.TypeFor[account]().PkgPath() {
			continue // this package's own split of a Member
		}
		if !slices.Contains(storetest.RoundTripTypes, typ) {
			t.Errorf("%s is stored but not in storetest.RoundTripTypes: add it there and to testPopulatedRecordsRoundTrip (store/storetest/populated.go)", typ)
		}
	}
}

// typeName is how the manifest and the derivation name a type.
func typeName(t reflect.Type) string {
	return t.String()
}

// TestStoredTypesAreDerived finds, in the store's own source, every type a
// value of which reaches encode or decode, and fails unless storedTypes
// lists exactly those.
func TestStoredTypesAreDerived(t *testing.T) {
	found, err := deriveStoredTypes(".")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, typ := range storedTypes {
		listed[typeName(typ)] = true
		if _, ok := found[typeName(typ)]; !ok {
			t.Errorf("%s is in storedTypes but no code of the store encodes or decodes it: take it out of storedTypes (its records stay in old files: a migration?)", typ)
		}
	}
	for name, pos := range found {
		if !listed[name] {
			t.Errorf("%s: the store encodes or decodes %s, which storedTypes (storedtypes_test.go) does not list: add it there, then run go test ./store -run TestFormat -update to record its format", pos, name)
		}
	}
}

// sink is a parameter through which a stored value flows: a value
// parameter (param >= 0) or a type parameter of a generic function
// (typeParam >= 0) whose type argument is the stored type.
type sink struct {
	fn        *types.Func
	param     int
	typeParam int
}

// deriveStoredTypes type-checks the package in dir (tests aside) and
// returns the stored types, named as reflect names them (engine.Member,
// store.account), each with a place that stores it. Values flow to
// encode's first and decode's second parameter; a function that passes a
// parameter of interface or type-parameter type on to one of those is
// followed in turn, until no new such function turns up. An argument whose
// type the analysis cannot tell (an interface value that is no parameter)
// is an error, so nothing escapes it silently.
func deriveStoredTypes(dir string) (map[string]token.Position, error) {
	fset := token.NewFileSet()
	pkg, info, files, err := typeCheck(fset, dir)
	if err != nil {
		return nil, err
	}
	scope := pkg.Scope()
	sinks := map[sink]bool{}
	for name, param := range map[string]int{"encode": 0, "decode": 1} {
		fn, ok := scope.Lookup(name).(*types.Func)
		if !ok {
			return nil, fmt.Errorf("no func %s in %s", name, pkg.Path())
		}
		sinks[sink{fn: fn, param: param, typeParam: -1}] = true
	}
	found := map[string]token.Position{}
	for {
		n := len(sinks)
		var errs []string
		for _, f := range files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				encl := info.Defs[fd.Name].(*types.Func)
				ast.Inspect(fd.Body, func(node ast.Node) bool {
					call, ok := node.(*ast.CallExpr)
					if !ok {
						return true
					}
					callee, inst := calleeOf(info, call.Fun)
					if callee == nil {
						return true
					}
					for s := range sinks {
						if s.fn != callee {
							continue
						}
						var typ types.Type
						var arg ast.Expr = call
						if s.param >= 0 {
							arg = call.Args[s.param]
							typ = info.Types[arg].Type
						} else {
							typ = inst.TypeArgs.At(s.typeParam)
						}
						if err := flow(info, encl, arg, typ, sinks, found, fset); err != nil {
							errs = append(errs, err.Error())
						}
					}
					return true
				})
			}
		}
		if len(errs) > 0 {
			slices.Sort(errs)
			return nil, fmt.Errorf("%s", strings.Join(slices.Compact(errs), "\n"))
		}
		if len(sinks) == n {
			return found, nil
		}
	}
}

// flow records what a value of type typ, passed at arg inside encl,
// stores: a concrete type, or a new sink when typ is encl's parameter of
// interface type or one of its type parameters.
func flow(info *types.Info, encl *types.Func, arg ast.Expr, typ types.Type, sinks map[sink]bool, found map[string]token.Position, fset *token.FileSet) error {
	pos := fset.Position(arg.Pos())
	base := typ
	if p, ok := base.(*types.Pointer); ok {
		base = p.Elem()
	}
	sig := encl.Type().(*types.Signature)
	if tp, ok := base.(*types.TypeParam); ok {
		if tps := sig.TypeParams(); tps == nil || tp.Index() >= tps.Len() || tps.At(tp.Index()) != tp {
			return fmt.Errorf("%s: type parameter %s is not %s's", pos, tp, encl.Name())
		}
		sinks[sink{fn: encl, param: -1, typeParam: tp.Index()}] = true
		return nil
	}
	if types.IsInterface(base) {
		id, ok := ast.Unparen(arg).(*ast.Ident)
		if ok {
			for i := range sig.Params().Len() {
				if sig.Params().At(i) == info.Uses[id] {
					sinks[sink{fn: encl, param: i, typeParam: -1}] = true
					return nil
				}
			}
		}
		return fmt.Errorf("%s: %s stores a value of type %s that is not one of its parameters: the test cannot tell its type", pos, encl.Name(), typ)
	}
	named, ok := base.(*types.Named)
	if !ok {
		return fmt.Errorf("%s: %s stores a %s, not a named struct", pos, encl.Name(), typ)
	}
	name := named.Obj().Pkg().Name() + "." + named.Obj().Name()
	if _, seen := found[name]; !seen {
		found[name] = pos
	}
	return nil
}

// calleeOf returns the function a call expression calls, if it names one
// (generic ones by their origin, with the instance).
func calleeOf(info *types.Info, fun ast.Expr) (*types.Func, types.Instance) {
	fun = ast.Unparen(fun)
	switch e := fun.(type) {
	case *ast.IndexExpr:
		fun = e.X
	case *ast.IndexListExpr:
		fun = e.X
	}
	var id *ast.Ident
	switch e := fun.(type) {
	case *ast.Ident:
		id = e
	case *ast.SelectorExpr:
		id = e.Sel
	default:
		return nil, types.Instance{}
	}
	fn, ok := info.Uses[id].(*types.Func)
	if !ok {
		return nil, types.Instance{}
	}
	return fn.Origin(), info.Instances[id]
}

// typeCheck parses the package in dir as the build would (tests aside)
// and type-checks it against the export data of its dependencies, which
// go list builds (or finds in the build cache).
func typeCheck(fset *token.FileSet, dir string) (*types.Package, *types.Info, []*ast.File, error) {
	bp, err := build.ImportDir(dir, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the go command, to find the export data of the imports: %w", err)
	}
	cmd := exec.Command(goTool, "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}\t{{.DepOnly}}", ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("go list -export: %w\n%s", err, stderr.Bytes())
	}
	exports := map[string]string{}
	var importPath string
	for line := range strings.Lines(string(out)) {
		fields := strings.Split(strings.TrimSpace(line), "\t")
		if len(fields) != 3 {
			return nil, nil, nil, fmt.Errorf("go list: unexpected line %q", line)
		}
		exports[fields[0]] = fields[1]
		if fields[2] == "false" {
			importPath = fields[0]
		}
	}
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, nil, nil, err
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})}
	info := &types.Info{
		Types:     map[ast.Expr]types.TypeAndValue{},
		Defs:      map[*ast.Ident]types.Object{},
		Uses:      map[*ast.Ident]types.Object{},
		Instances: map[*ast.Ident]types.Instance{},
	}
	pkg, err := conf.Check(importPath, fset, files, info)
	if err != nil {
		return nil, nil, nil, err
	}
	return pkg, info, files, nil
}
