package rules

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker/nature"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
	"github.com/shopspring/decimal"
)

// Limits bound the work the earn rules may do for one purchase, over all
// rules and all items together, so that no rule can take the tills down:
// an evaluation that reaches a limit fails instead of running on.
type Limits struct {
	// Steps counts the work of the expressions: about one step per
	// instruction of the expression machine, 50 for a function call or a
	// decimal operation, one per 2 bytes a function or operator reads or
	// writes; a loop (map, filter, reduce...) pays for all its turns when
	// it starts.
	Steps int64
	// Memory is the bytes the expressions may allocate: text, lists and
	// maps they build.
	Memory int64
}

// The default limits cost a few milliseconds of one core at most; the
// ceilings are what a rules file may raise them to.
const (
	DefaultSteps  = 1_000_000
	DefaultMemory = 1 << 20
	MaxSteps      = 50_000_000
	MaxMemory     = 64 << 20
)

// DefaultLimits are the limits of a rules file without a limits section.
var DefaultLimits = Limits{Steps: DefaultSteps, Memory: DefaultMemory}

// BudgetError is an evaluation that reached one of its limits.
type BudgetError struct {
	Resource string // "steps" or "memory"
	Limit    int64
}

func (e *BudgetError) Error() string {
	if e.Resource == "memory" {
		return fmt.Sprintf("exceeds the memory budget of %d bytes per purchase (limits.memory)", e.Limit)
	}
	return fmt.Sprintf("exceeds the budget of %d steps per purchase (limits.steps)", e.Limit)
}

// meter is the budget of one purchase's evaluation. Expressions reach it
// through the meterVar variable, which the patch below threads into every
// loop body and every call whose cost depends on the size of its data.
type meter struct {
	steps, memory       int64
	maxSteps, maxMemory int64
}

// meterVar names the meter in the environment. A rule cannot name it: the
// expression lexer never produces an identifier with a space.
const meterVar = "budget meter"

func (m *meter) reset(l Limits) {
	*m = meter{maxSteps: l.Steps, maxMemory: l.Memory}
}

func (m *meter) step(n int64) error {
	m.steps += n
	if m.steps > m.maxSteps {
		return &BudgetError{Resource: "steps", Limit: m.maxSteps}
	}
	return nil
}

// alloc charges n bytes made, and the steps of writing them.
func (m *meter) alloc(n int64) error {
	m.memory += n
	if m.memory > m.maxMemory {
		return &BudgetError{Resource: "memory", Limit: m.maxMemory}
	}
	return m.step(n / bytesPerStep)
}

// fits refuses, before it is made, a value of n bytes that the budget
// could not pay for; then charges it.
func (m *meter) fits(n int64) error {
	if n < 0 || n > m.maxMemory-m.memory {
		m.memory = m.maxMemory + 1
		return &BudgetError{Resource: "memory", Limit: m.maxMemory}
	}
	return m.alloc(n)
}

// The cost model, in steps. BenchmarkBudget measures what a step costs
// in the most expensive ways of spending them; these weights keep it
// within a few nanoseconds.
const (
	// bytesPerStep: reading or writing 2 bytes of data costs a step.
	bytesPerStep = 2
	// callSteps is the cost of a call: a decimal operation or a built-in
	// function costs about as much as 50 plain instructions.
	callSteps = 50
	// loopSteps is what one turn of a loop costs beyond its body.
	loopSteps = 8
)

// programCost is what one run of a compiled expression costs outside its
// loops: every instruction once at most, since only loops jump back.
func programCost(p *vm.Program) int64 {
	var n int64
	for _, op := range p.Bytecode {
		switch op {
		case vm.OpCall, vm.OpCall0, vm.OpCall1, vm.OpCall2, vm.OpCall3, vm.OpCallN,
			vm.OpCallFast, vm.OpCallSafe, vm.OpCallTyped, vm.OpCallBuiltin1:
			n += callSteps
		default:
			n++
		}
	}
	return n
}

// sizeOf estimates the bytes v holds, looking inside lists and maps. It
// stops counting past limit, so that measuring a huge value costs no more
// than the budget that is left.
func sizeOf(v any, limit int64) int64 {
	switch x := v.(type) {
	case nil, bool, int, int64, float64, time.Time, time.Duration, decimal.Decimal:
		return 8
	case string:
		return int64(len(x)) + 16
	case []any:
		n := int64(24)
		for _, e := range x {
			if n > limit {
				break
			}
			n += sizeOf(e, limit-n)
		}
		return n
	case []int:
		return 24 + 8*int64(len(x))
	case []float64:
		return 24 + 8*int64(len(x))
	case []string:
		n := int64(24)
		for _, e := range x {
			if n > limit {
				break
			}
			n += int64(len(e)) + 16
		}
		return n
	case map[string]any:
		n := int64(48)
		for k, e := range x {
			if n > limit {
				break
			}
			n += int64(len(k)) + 16 + sizeOf(e, limit-n)
		}
		return n
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return int64(rv.Len()) + 16
	case reflect.Slice, reflect.Array:
		n := int64(24)
		for i := 0; i < rv.Len() && n <= limit; i++ {
			n += sizeOf(rv.Index(i).Interface(), limit-n)
		}
		return n
	case reflect.Map:
		n := int64(48)
		it := rv.MapRange()
		for it.Next() && n <= limit {
			n += sizeOf(it.Key().Interface(), limit-n) + sizeOf(it.Value().Interface(), limit-n)
		}
		return n
	}
	return 8
}

// lengthOf is the number of turns a loop over v takes.
func lengthOf(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case []int:
		return len(x)
	case nil:
		return 0
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map, reflect.String:
		return rv.Len()
	case reflect.Pointer:
		if rv.Elem().Kind() == reflect.Array {
			return rv.Elem().Len()
		}
	}
	return 0
}

func (m *meter) left() int64 {
	return max(0, (m.maxSteps-m.steps)*bytesPerStep, m.maxMemory-m.memory) + 1
}

// The functions the patch calls. Their first argument is the meter.
var meterOptions = []expr.Option{
	// _loop pays for a whole loop before it starts: its length times what
	// a turn costs. A loop that stops early (any, find) has paid for more
	// than it ran, which keeps the price of a turn out of the turn itself.
	expr.Function("_loop", func(args ...any) (any, error) {
		m, turn := args[0].(*meter), int64(args[2].(int))
		n := int64(lengthOf(args[1]))
		if n > 0 && turn > (m.maxSteps-m.steps)/n {
			return false, m.step(m.maxSteps + 1)
		}
		return true, m.step(n * turn)
	}, new(func(*meter, any, int) bool)),
	// _scan pays for reading values, before an operation that reads them
	// whole.
	expr.Function("_scan", func(args ...any) (any, error) {
		m := args[0].(*meter)
		for _, a := range args[1:] {
			if err := m.step(sizeOf(a, m.left()) / bytesPerStep); err != nil {
				return false, err
			}
		}
		return true, nil
	}, new(func(*meter, ...any) bool)),
	// _regex pays for matching a regular expression, which reads the text
	// once for every part of the pattern.
	expr.Function("_regex", func(args ...any) (any, error) {
		m := args[0].(*meter)
		s, p := sizeOf(args[1], m.left()), sizeOf(args[2], m.left())
		if s > 0 && p > m.left()/s {
			return false, m.step(m.maxSteps + 1)
		}
		return true, m.step(s * p / bytesPerStep)
	}, new(func(*meter, any, any) bool)),
	// _sort pays for sorting a list: n log n comparisons.
	expr.Function("_sort", func(args ...any) (any, error) {
		m := args[0].(*meter)
		n := int64(lengthOf(args[1]))
		return true, m.step(sizeOf(args[1], m.left()) / bytesPerStep * int64(bits.Len64(uint64(n)+1)))
	}, new(func(*meter, any) bool)),
	// _made pays for a value an operation has just made.
	expr.Function("_made", func(args ...any) (any, error) {
		m := args[0].(*meter)
		return true, m.alloc(sizeOf(args[1], m.left()))
	}, new(func(*meter, any) bool)),
	// The functions below make text that can be much larger than their
	// arguments, so they refuse a result the budget cannot pay for before
	// making it.
	expr.Function("_concat", func(args ...any) (any, error) {
		m, a, b := args[0].(*meter), args[1].(string), args[2].(string)
		if err := m.fits(int64(len(a)) + int64(len(b))); err != nil {
			return nil, err
		}
		return a + b, nil
	}, new(func(*meter, string, string) string)),
	expr.Function("_range", func(args ...any) (any, error) {
		m, from, to := args[0].(*meter), args[1].(int), args[2].(int)
		if to < from {
			return []int{}, nil
		}
		n := uint64(to) - uint64(from) + 1
		if n == 0 || n > uint64(m.maxMemory) {
			return nil, m.fits(-1)
		}
		if err := m.fits(int64(n) * 8); err != nil {
			return nil, err
		}
		return runtime.MakeRange(from, to), nil
	}, new(func(*meter, int, int) []int)),
	expr.Function("_repeat", func(args ...any) (any, error) {
		m, s, n := args[0].(*meter), args[1].(string), args[2].(int)
		if n < 0 {
			return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
		}
		if len(s) > 0 && n > int(m.maxMemory) {
			return nil, m.fits(-1)
		}
		if err := m.fits(int64(len(s)) * int64(n)); err != nil {
			return nil, err
		}
		return strings.Repeat(s, n), nil
	}, new(func(*meter, string, int) string)),
	expr.Function("_replace", func(args ...any) (any, error) {
		m, s, old, repl, n := args[0].(*meter), args[1].(string), args[2].(string), args[3].(string), args[4].(int)
		if err := m.step(int64(len(s)) / bytesPerStep); err != nil {
			return nil, err
		}
		count := strings.Count(s, old)
		if old == "" {
			count = utf8.RuneCountInString(s) + 1
		}
		if n >= 0 && n < count {
			count = n
		}
		if err := m.fits(int64(len(s)) + int64(count)*(int64(len(repl))-int64(len(old)))); err != nil {
			return nil, err
		}
		return strings.Replace(s, old, repl, n), nil
	}, new(func(*meter, string, string, string, int) string)),
	expr.Function("_join", func(args ...any) (any, error) {
		m, sep := args[0].(*meter), args[2].(string)
		var parts []string
		switch list := args[1].(type) {
		case []string:
			parts = list
		case []any:
			if err := m.fits(16 * int64(len(list))); err != nil {
				return nil, err
			}
			parts = make([]string, len(list))
			for i, e := range list {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("invalid argument for join (%T in the list)", e)
				}
				parts[i] = s
			}
		default:
			return nil, fmt.Errorf("invalid argument for join (type %T)", args[1])
		}
		n := int64(len(sep)) * int64(max(len(parts)-1, 0))
		for _, s := range parts {
			n += int64(len(s))
		}
		if err := m.fits(n); err != nil {
			return nil, err
		}
		return strings.Join(parts, sep), nil
	}, new(func(*meter, any, string) string)),
}

// predicates are the built-ins that take a loop body: the patch pays for
// their turns instead of for their arguments.
var predicates = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"count": true, "sum": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// constantTime are the built-ins that cost the same whatever their
// arguments hold.
var constantTime = map[string]bool{"len": true, "type": true, "first": true, "last": true}

// meterPatch threads the meter through a type-checked expression: it runs
// after the rules' own patches and checks, so what a marketer sees in
// messages is the expression as written.
//
// Work is bounded at three places. A run of an expression costs its
// instructions (programCost); every turn of a loop calls _step with the
// size of its body; and an operation whose cost grows with its data —
// a built-in function, comparing or searching text and lists — pays for
// the data it reads (_scan) and makes (_made), or, for those whose result
// can dwarf their arguments, refuses one that would not fit before making
// it. Operations whose data is bounded by the request or the rules file
// (purchase.store_id == "s1") need no charge, so the common rule runs
// unpatched.
type meterPatch struct {
	shadowed map[string]bool // variables a let redeclares, so no longer the request's
	vars     int             // variables and calls the patch added
	// ranges are ranges the optimizer turns into comparisons (x in 1..9),
	// which are never built.
	ranges map[*ast.BinaryNode]bool
}

// environment names the variables whose values the request and the rules
// file bound: ids, items and attributes are all limited in size.
var environment = map[string]bool{"purchase": true, "member": true, "tier": true, "item": true}

func newMeterPatch(tree ast.Node) *meterPatch {
	v := &meterPatch{shadowed: map[string]bool{}, ranges: map[*ast.BinaryNode]bool{}}
	ast.Walk(&tree, (*survey)(v))
	return v
}

// survey finds, before the patch changes the tree, the lets and the
// ranges the patch must know about.
type survey meterPatch

func (v *survey) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.VariableDeclaratorNode:
		v.shadowed[n.Name] = true
	case *ast.BinaryNode:
		if n.Operator != "in" || n.Left.Type().Kind() != reflect.Int {
			return
		}
		if r, ok := n.Right.(*ast.BinaryNode); ok && r.Operator == ".." {
			_, from := r.Left.(*ast.IntegerNode)
			_, to := r.Right.(*ast.IntegerNode)
			if from && to {
				v.ranges[r] = true
			}
		}
	}
}

func (v *meterPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.CallNode:
		// Patched calls keep the type the first check gave them, and the
		// checker does not look inside a typed call; clearing it makes the
		// final check type what the patch put among its arguments.
		n.SetNature(nature.Nature{})
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "_in" {
			if !v.bounded(n.Arguments[1]) {
				v.charge(node, []*ast.Node{&n.Arguments[1]}, false)
			}
			return
		}
		if _, ok := n.Callee.(*ast.MemberNode); ok {
			v.chargeUnbounded(node, n.Arguments, true)
		}
	case *ast.BuiltinNode:
		v.builtin(node, n)
	case *ast.BinaryNode:
		v.binary(node, n)
	}
}

func (v *meterPatch) builtin(node *ast.Node, n *ast.BuiltinNode) {
	loc := n.Location()
	args := n.Arguments
	// A call with too few arguments fails when it runs, having read
	// nothing; the general case below charges whatever it has.
	switch {
	case predicates[n.Name] && len(args) >= 1:
		v.loop(node, n)
	case constantTime[n.Name]:
	case n.Name == "repeat" && len(args) == 2:
		ast.Patch(node, v.call(loc, "_repeat", args[0], args[1]))
	case n.Name == "replace" && (len(args) == 3 || len(args) == 4):
		count := ast.Node(&ast.IntegerNode{Value: -1})
		if len(args) == 4 {
			count = args[3]
		}
		ast.Patch(node, v.call(loc, "_replace", args[0], args[1], args[2], count))
	case n.Name == "join" && (len(args) == 1 || len(args) == 2):
		sep := ast.Node(&ast.StringNode{Value: ""})
		if len(args) == 2 {
			sep = args[1]
		}
		ast.Patch(node, v.call(loc, "_join", args[0], sep))
	case sorting[n.Name] && len(args) >= 1 && !v.bounded(args[0]):
		v.chargeWith(node, "_sort", []*ast.Node{&args[0]}, true)
	default:
		v.chargeUnbounded(node, args, !isScalar(n.Type()))
	}
}

// sorting are the built-ins that sort their list, so cost n log n.
var sorting = map[string]bool{"sort": true, "uniq": true, "median": true}

// loop makes a loop pay for its turns before it starts:
//
//	let c = LIST; _loop(meter, c, TURN); all(c, BODY)
func (v *meterPatch) loop(node *ast.Node, n *ast.BuiltinNode) {
	loc := n.Location()
	turn := int64(loopSteps)
	if len(n.Arguments) > 1 {
		// sum(list) and count(list) have no body.
		turn += nodeCost(n.Arguments[1])
	}
	name := v.variable()
	list := n.Arguments[0]
	n.Arguments[0] = v.ident(loc, name)
	turnNode := &ast.IntegerNode{Value: int(min(turn, math.MaxInt32))}
	turnNode.SetLocation(loc)
	decl := &ast.VariableDeclaratorNode{Name: name, Value: list,
		Expr: v.sequence(loc, v.call(loc, "_loop", v.ident(loc, name), turnNode), n)}
	decl.SetLocation(loc)
	*node = decl
}

func (v *meterPatch) binary(node *ast.Node, n *ast.BinaryNode) {
	l, r := v.bounded(n.Left), v.bounded(n.Right)
	var free bool
	switch n.Operator {
	case "..":
		if !v.ranges[n] {
			ast.Patch(node, v.call(n.Location(), "_range", n.Left, n.Right))
		}
		return
	case "&&", "||", "and", "or", "??":
		free = true
	case "==", "!=", "<", ">", "<=", ">=":
		// Comparing stops at the end of the shorter side.
		free = l || r
	case "startsWith", "endsWith":
		free = r
	case "contains":
		free = l
	case "in":
		free = r && (l || n.Right.Type().Kind() != reflect.Map)
	case "+", "-", "*", "/", "%", "**", "^":
		// With a number on either side the result is a number or an
		// error: only two texts make a larger text.
		free = (l && r) || isNumber(n.Left.Type()) || isNumber(n.Right.Type())
	default:
		free = l && r
	}
	if free {
		return
	}
	switch {
	case n.Operator == "+" && n.Left.Type().Kind() == reflect.String && n.Right.Type().Kind() == reflect.String:
		ast.Patch(node, v.call(n.Location(), "_concat", n.Left, n.Right))
	case n.Operator == "matches":
		v.chargeWith(node, "_regex", []*ast.Node{&n.Left, &n.Right}, false)
	default:
		v.charge(node, []*ast.Node{&n.Left, &n.Right}, !isScalar(n.Type()))
	}
}

// chargeUnbounded charges the operation at node for those of its arguments
// whose size is not bounded; nothing when they all are.
func (v *meterPatch) chargeUnbounded(node *ast.Node, args []ast.Node, made bool) {
	var open []*ast.Node
	for i := range args {
		if !v.bounded(args[i]) {
			open = append(open, &args[i])
		}
	}
	if len(open) > 0 {
		v.charge(node, open, made)
	}
}

func (v *meterPatch) charge(node *ast.Node, args []*ast.Node, made bool) {
	v.chargeWith(node, "_scan", args, made)
}

// chargeWith rewrites the operation at node so that it pays, through
// the function fn, for the arguments given, and for its result when made:
//
//	let a = ARG; _scan(meter, a); let r = OP(a); _made(meter, r); r
//
// The lets keep each argument evaluated once, and keep the types of the
// operation and its result as they were. An argument that is a literal
// stays one, in the operation and in the call to fn: the compiler treats
// some literals (a regular expression) better than values.
func (v *meterPatch) chargeWith(node *ast.Node, fn string, args []*ast.Node, made bool) {
	loc := (*node).Location()
	var names []string
	var values []ast.Node
	scan := []ast.Node{}
	for _, a := range args {
		if lit, ok := (*a).(*ast.StringNode); ok {
			scan = append(scan, &ast.StringNode{Value: lit.Value})
			continue
		}
		name := v.variable()
		names, values = append(names, name), append(values, *a)
		*a = v.ident(loc, name)
		scan = append(scan, v.ident(loc, name))
	}
	body := *node
	if made {
		r := v.variable()
		body = &ast.VariableDeclaratorNode{Name: r, Value: body, Expr: v.sequence(loc, v.call(loc, "_made", v.ident(loc, r)), v.ident(loc, r))}
		body.SetLocation(loc)
	}
	body = v.sequence(loc, v.call(loc, fn, scan...), body)
	for i := len(names) - 1; i >= 0; i-- {
		body = &ast.VariableDeclaratorNode{Name: names[i], Value: values[i], Expr: body}
		body.SetLocation(loc)
	}
	*node = body
}

func (v *meterPatch) variable() string {
	v.vars++
	return fmt.Sprintf("budget %d", v.vars)
}

func (v *meterPatch) ident(loc file.Location, name string) ast.Node {
	n := &ast.IdentifierNode{Value: name}
	n.SetLocation(loc)
	return n
}

func (v *meterPatch) call(loc file.Location, fn string, args ...ast.Node) ast.Node {
	v.vars++
	callee := &ast.IdentifierNode{Value: fn}
	callee.SetLocation(loc)
	n := &ast.CallNode{Callee: callee, Arguments: append([]ast.Node{v.ident(loc, meterVar)}, args...)}
	n.SetLocation(loc)
	return n
}

func (v *meterPatch) sequence(loc file.Location, nodes ...ast.Node) ast.Node {
	n := &ast.SequenceNode{Nodes: nodes}
	n.SetLocation(loc)
	return n
}

// bounded reports whether the size of what n yields is bounded by the
// request and the rules file, whatever the other rules' data: a number,
// a literal, a variable of the request, or a function of those that cannot
// grow them much.
func (v *meterPatch) bounded(n ast.Node) bool {
	if isScalar(n.Type()) {
		return true
	}
	switch x := n.(type) {
	case *ast.StringNode, *ast.ConstantNode, *ast.NilNode, *ast.BytesNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return true
	case *ast.IdentifierNode:
		return environment[x.Value] && !v.shadowed[x.Value]
	case *ast.MemberNode:
		return v.bounded(x.Node)
	case *ast.ChainNode:
		return v.bounded(x.Node)
	case *ast.SliceNode:
		return v.bounded(x.Node)
	case *ast.UnaryNode:
		return v.bounded(x.Node)
	case *ast.ConditionalNode:
		return v.bounded(x.Exp1) && v.bounded(x.Exp2)
	case *ast.ArrayNode:
		return v.allBounded(x.Nodes)
	case *ast.MapNode:
		return v.allBounded(x.Pairs)
	case *ast.PairNode:
		return v.bounded(x.Key) && v.bounded(x.Value)
	case *ast.BinaryNode:
		return (x.Operator == "+" || x.Operator == "??") && v.bounded(x.Left) && v.bounded(x.Right)
	case *ast.BuiltinNode:
		switch x.Name {
		case "repeat", "replace", "join":
			return false
		}
		return !predicates[x.Name] && v.allBounded(x.Arguments)
	}
	return false
}

func (v *meterPatch) allBounded(nodes []ast.Node) bool {
	for _, n := range nodes {
		if !v.bounded(n) {
			return false
		}
	}
	return true
}

// isScalar reports whether values of type t have a fixed size: numbers,
// booleans, times and decimals (which the arithmetic keeps bounded).
func isScalar(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return t == decimalType || t == timeType
}

var timeType = reflect.TypeOf(time.Time{})

// nodeCost estimates the instructions of a loop body in steps.
func nodeCost(n ast.Node) int64 {
	var c costCounter
	ast.Walk(&n, &c)
	return int64(c)
}

type costCounter int64

func (c *costCounter) Visit(node *ast.Node) {
	switch (*node).(type) {
	case *ast.CallNode, *ast.BuiltinNode:
		*c += callSteps
	default:
		*c++
	}
}

// errVMMemory is the message of the expression machine's own memory
// limit, which counts the elements of the lists and maps it builds.
const errVMMemory = "memory budget exceeded"

// budgetOf returns the BudgetError in err, translating the machine's own
// limit into one.
func budgetOf(err error, l Limits) (*BudgetError, bool) {
	var be *BudgetError
	if errors.As(err, &be) {
		return be, true
	}
	if strings.Contains(err.Error(), errVMMemory) {
		return &BudgetError{Resource: "memory", Limit: l.Memory}, true
	}
	return nil, false
}
