package rules

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/patcher"
	"github.com/expr-lang/expr/vm"
	"github.com/shopspring/decimal"
)

// The variables expressions see. Field types are chosen for the expression
// language, not for storage: money is a decimal in major units so that
// "purchase.amount >= 10" means ten dollars, and counts are int because
// that is the type of integer literals.
type purchaseEnv struct {
	Amount     decimal.Decimal `expr:"amount"`
	Currency   string          `expr:"currency"`
	StoreID    string          `expr:"store_id"`
	TerminalID string          `expr:"terminal_id"`
	OccurredAt time.Time       `expr:"occurred_at"`
	Weekday    string          `expr:"weekday"`
	Hour       int             `expr:"hour"`
	Day        int             `expr:"day"`
	Month      int             `expr:"month"`
	Items      []*itemEnv      `expr:"items"`
}

type itemEnv struct {
	SKU      string          `expr:"sku"`
	Category string          `expr:"category"`
	Quantity int             `expr:"quantity"`
	Amount   decimal.Decimal `expr:"amount"`
}

type memberEnv struct {
	ID            string            `expr:"id"`
	Tier          string            `expr:"tier"`
	EnrolledAt    time.Time         `expr:"enrolled_at"`
	DaysEnrolled  int               `expr:"days_enrolled"`
	PurchaseCount int               `expr:"purchase_count"`
	LifetimeSpend decimal.Decimal   `expr:"lifetime_spend"`
	BirthdayMonth int               `expr:"birthday_month"`
	Attributes    map[string]string `expr:"attributes"`
	Segment       string            `expr:"segment"`
	Lifecycle     string            `expr:"lifecycle"`
	ChurnRisk     bool              `expr:"churn_risk"`
	CLV           decimal.Decimal   `expr:"clv"`
	RFM           string            `expr:"rfm"`
}

var (
	decimalType  = reflect.TypeOf(decimal.Decimal{})
	purchaseType = reflect.TypeOf(purchaseEnv{})
	itemType     = reflect.TypeOf(itemEnv{})
	memberType   = reflect.TypeOf(memberEnv{})
	anyType      = reflect.TypeOf((*any)(nil)).Elem()
)

// weekdays are the names purchase.weekday takes, indexed by time.Weekday.
var weekdays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// tierShape is the expression type of the tier variable. Levels may carry
// any extra keys, so the struct is built at Parse time; a static type is what
// lets the checker reject "tier.multiplyer" before the file goes live.
type tierShape struct {
	typ    reflect.Type // pointer to the built struct
	fields []string     // every name tier has in expressions
	levels []any        // one *struct per level, in level order
}

// newTierShape builds the tier type from every key used on any level. A key
// whose values differ in type between levels is typed any; a level without
// the key sees the type's zero value.
func newTierShape(levels []Level) *tierShape {
	var keys []string
	types := map[string]reflect.Type{}
	for _, l := range levels {
		for _, k := range sortedKeys(l.Extra) {
			t := reflect.TypeOf(l.Extra[k])
			prev, seen := types[k]
			switch {
			case !seen:
				keys = append(keys, k)
				types[k] = t
			case prev != t:
				types[k] = anyType
			}
		}
	}
	fields := []reflect.StructField{
		{Name: "Name", Type: reflect.TypeOf(""), Tag: `expr:"name"`},
		{Name: "Multiplier", Type: decimalType, Tag: `expr:"multiplier"`},
	}
	names := []string{"name", "multiplier"}
	for i, k := range keys {
		fields = append(fields, reflect.StructField{
			Name: "X" + strconv.Itoa(i),
			Type: types[k],
			Tag:  reflect.StructTag("expr:" + strconv.Quote(k)),
		})
		names = append(names, k)
	}
	st := reflect.StructOf(fields)
	s := &tierShape{typ: reflect.PointerTo(st), fields: names}
	for _, l := range levels {
		v := reflect.New(st)
		v.Elem().Field(0).SetString(l.Name)
		v.Elem().Field(1).Set(reflect.ValueOf(l.Multiplier))
		for i, k := range keys {
			if x, ok := l.Extra[k]; ok {
				v.Elem().Field(2 + i).Set(reflect.ValueOf(x))
			}
		}
		s.levels = append(s.levels, v.Interface())
	}
	return s
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exprError is a compile error at a rune offset of the expression's text.
type exprError struct {
	offset  int
	message string
}

// exprCompiler compiles the expressions of one rules file; it holds what all of
// them share.
type exprCompiler struct {
	loc      *time.Location
	tier     *tierShape
	replacer *strings.Replacer
	literals literalSet
}

// literalSet collects the text literals of every expression, up to a few
// dozen: the words rules compare purchases with.
type literalSet struct {
	seen map[string]bool
	list []string
}

// Visit records a text literal.
func (l *literalSet) Visit(node *ast.Node) {
	s, ok := (*node).(*ast.StringNode)
	if !ok || len(l.list) >= 50 || len(s.Value) > 128 || l.seen[s.Value] {
		return
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	l.seen[s.Value] = true
	l.list = append(l.list, s.Value)
}

func newCompiler(loc *time.Location, tier *tierShape) *exprCompiler {
	return &exprCompiler{
		loc:  loc,
		tier: tier,
		// The checker names Go types; a marketer knows the variables.
		replacer: strings.NewReplacer(
			"decimal.Decimal", "decimal",
			"*rules.purchaseEnv", "purchase",
			"*rules.itemEnv", "item",
			"*rules.memberEnv", "member",
			tier.typ.String(), "tier",
			"float64", "float",
		),
	}
}

// scope says which variables an expression sees: an earn rule sees the
// purchase (and, with for_each, the item); a reward's when is about the
// member alone, taken at no purchase.
type scope int

const (
	scopePurchase scope = iota
	scopeItem
	scopeMember
)

// exprKind says what an expression must yield.
type exprKind int

const (
	kindBool exprKind = iota
	kindNumber
)

// compile type-checks and compiles one expression, over the variables of
// sc: the item variable only for for_each rules, no purchase for rewards. It is expr.Compile taken apart,
// because that does not tell the type of the result, which is what says
// that points yields a number. metered reports whether what a run costs
// depends on the data (a loop, text built), rather than being known from
// the compiled program alone.
func (c *exprCompiler) compile(src string, kind exprKind, sc scope) (prog *vm.Program, metered bool, failed *exprError) {
	// Rules are compiled by the server that runs them (a PUT, the file
	// watcher): an expression that trips a bug in the expression library
	// or in the patches here is refused, not a crash.
	defer func() {
		if r := recover(); r != nil {
			prog, metered, failed = nil, false, &exprError{message: fmt.Sprintf("the expression cannot be compiled: %v", r)}
		}
	}()
	env := map[string]any{
		"member": (*memberEnv)(nil),
		"tier":   reflect.Zero(c.tier.typ).Interface(),
		meterVar: (*meter)(nil),
	}
	if sc != scopeMember {
		env["purchase"] = (*purchaseEnv)(nil)
	}
	if sc == scopeItem {
		env["item"] = (*itemEnv)(nil)
	}
	fields := &fieldCheck{tier: c.tier}
	limits := &restrictions{}
	literals := &exactLiterals{}
	cfg := conf.CreateNew()
	opts := []expr.Option{
		expr.Env(env),
		// now() would make a purchase earn differently when replayed.
		expr.DisableBuiltin("now"),
		expr.Patch(patcher.WithTimezone{Location: c.loc}),
		expr.Patch(literals),
		expr.Patch(fields),
		expr.Patch(limits),
	}
	opts = append(opts, decimalOptions...)
	opts = append(opts, meterOptions...)
	opts = append(opts, expr.Patch(&decimalNegation{}))
	for _, o := range opts {
		o(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	cfg.Check()

	tree, err := checker.ParseCheck(src, cfg)
	if fields.err != nil {
		return nil, false, fields.err
	}
	if err != nil {
		return nil, false, c.explain(err, sc)
	}
	if limits.err != nil {
		return nil, false, limits.err
	}
	if literals.err != nil {
		return nil, false, literals.err
	}
	if e := checkResult(tree.Node.Type(), kind); e != "" {
		return nil, false, &exprError{message: c.replacer.Replace(e)}
	}
	ast.Walk(&tree.Node, &c.literals)
	// The meter goes in once the expression is known to be good, so that
	// messages speak of the expression as written; checking again types
	// what the patch added. That check looks inside calls the first one
	// took as typed (an operator on an unknown name), so it can still find
	// a mistake.
	patch := newMeterPatch(tree.Node)
	ast.Walk(&tree.Node, patch)
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, false, c.explain(err, sc)
	}
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		return nil, false, c.explain(err, sc)
	}
	prog, err = compiler.Compile(tree, cfg)
	if err != nil {
		return nil, false, c.explain(err, sc)
	}
	return prog, patch.vars > 0, nil
}

// checkResult returns why an expression of type t cannot be a when or points
// expression, or "". An interface type is left to the run-time check.
func checkResult(t reflect.Type, kind exprKind) string {
	if t == nil || t.Kind() == reflect.Interface {
		return ""
	}
	switch kind {
	case kindBool:
		if t.Kind() != reflect.Bool {
			return "when must be true or false, got " + typeName(t)
		}
	case kindNumber:
		if !isNumber(t) {
			return "points must be a number, got " + typeName(t)
		}
	}
	return ""
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return t == decimalType
}

// typeName names a type in the words of the rules file.
func typeName(t reflect.Type) string {
	switch {
	case t == decimalType:
		return "decimal"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "float"
	case isNumber(t):
		return "integer"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "list"
	case t.Kind() == reflect.Map:
		return "map"
	}
	return t.String()
}

var unknownName = regexp.MustCompile(`^unknown name (\S+)$`)

// explain turns an expr error into a positioned message for a marketer.
func (c *exprCompiler) explain(err error, sc scope) *exprError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &exprError{message: c.replacer.Replace(err.Error())}
	}
	msg := fe.Message
	if m := unknownName.FindStringSubmatch(msg); m != nil {
		name := m[1]
		// Variables first, so that they win a tie with a function.
		vars := []string{"member", "tier"}
		if sc != scopeMember {
			vars = append(vars, "purchase")
		}
		if sc == scopeItem {
			vars = append(vars, "item")
		}
		for _, f := range builtin.Builtins {
			if f.Name != "now" {
				vars = append(vars, f.Name)
			}
		}
		switch {
		case sc == scopeMember && (name == "purchase" || name == "item"):
			msg = fmt.Sprintf("%s is not available in a reward's when, which is about the member (member, tier)", name)
		case name == "item" && sc != scopeItem:
			msg = `item is only available in rules with "for_each: item"`
		default:
			msg = fmt.Sprintf("unknown name %q%s", name, hint(name, vars))
		}
	}
	return &exprError{offset: fe.From, message: c.replacer.Replace(msg)}
}

// fieldCheck rejects a field that the purchase, item, member or tier
// variable does not have, with a hint. The checker would reject it too, but
// in terms of Go types and without a suggestion.
type fieldCheck struct {
	tier *tierShape
	err  *exprError
}

// Visit records the first member access to a field that does not exist.
func (v *fieldCheck) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || v.err != nil {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	var name string
	var fields []string
	switch t := m.Node.Type(); {
	case t == v.tier.typ:
		name, fields = "tier", v.tier.fields
	case t.Kind() == reflect.Pointer && t.Elem() == purchaseType:
		name, fields = "purchase", tagNames(purchaseType)
	case t.Kind() == reflect.Pointer && t.Elem() == itemType:
		name, fields = "item", tagNames(itemType)
	case t.Kind() == reflect.Pointer && t.Elem() == memberType:
		name, fields = "member", tagNames(memberType)
	default:
		return
	}
	for _, f := range fields {
		if f == prop.Value {
			return
		}
	}
	v.err = &exprError{
		offset:  prop.Location().From,
		message: fmt.Sprintf("%s has no field %q%s", name, prop.Value, hint(prop.Value, fields)),
	}
}

func tagNames(t reflect.Type) []string {
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Tag.Get("expr")
	}
	return names
}

// restrictions refuses what a rule may not reach: $env, which would let it
// read the evaluation's own bookkeeping, and the methods of values other
// than times and durations. The methods of decimals in particular
// (Shift, Pow, StringFixed) could build numbers and text of any size,
// outside the budget.
type restrictions struct{ err *exprError }

// Visit records the first use of $env or of a method that is not allowed.
func (v *restrictions) Visit(node *ast.Node) {
	if v.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if strings.HasPrefix(n.Value, "$") {
			v.err = &exprError{offset: n.Location().From, message: fmt.Sprintf("unknown name %q", n.Value)}
		}
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || !n.Method {
			return
		}
		switch n.Node.Type() {
		case timeType, durationType, locationType:
			return
		}
		v.err = &exprError{offset: prop.Location().From, message: fmt.Sprintf("%s has no method %q", typeName(n.Node.Type()), prop.Value)}
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	locationType = reflect.TypeOf((*time.Location)(nil))
)

// exactLiterals turns float literals into decimals, so that 0.29 * 100 is
// 29 and not 28.999999999999996. Formatting the float64 with the fewest
// digits that round-trip recovers the literal as written.
type exactLiterals struct{ err *exprError }

// Visit replaces a float literal with the equal decimal constant, and
// refuses one outside the range decimals are kept in.
func (v *exactLiterals) Visit(node *ast.Node) {
	f, ok := (*node).(*ast.FloatNode)
	if !ok {
		return
	}
	d, err := boundDecimal(decimal.NewFromFloat(f.Value))
	if err != nil && v.err == nil {
		v.err = &exprError{offset: f.Location().From, message: err.Error()}
	}
	ast.Patch(node, &ast.ConstantNode{Value: d})
}

// decimalDigits bounds decimals on both sides of the point, far beyond any
// amount or points but small enough that every operation on them stays
// cheap: without it, a loop multiplying a number by itself would build
// numbers of millions of digits.
const decimalDigits = 32

// boundDecimal keeps d within decimalDigits: finer digits are rounded away
// (they cannot change any points) and a larger number is an error.
func boundDecimal(d decimal.Decimal) (decimal.Decimal, error) {
	if d.Exponent() < -decimalDigits {
		d = d.Round(decimalDigits)
	}
	if !d.IsZero() && int(d.Exponent())+d.NumDigits() > decimalDigits {
		return decimal.Decimal{}, fmt.Errorf("number too large: more than %d digits before the point", decimalDigits)
	}
	return d, nil
}

// decimalNegation rewrites unary minus on a decimal, which expr's operator
// overloading does not cover. It repeats with the operator patchers because
// an operand's type is only known once they have run.
type decimalNegation struct{ applied bool }

// Visit replaces -x and +x on a decimal x with a call and with x.
func (v *decimalNegation) Visit(node *ast.Node) {
	u, ok := (*node).(*ast.UnaryNode)
	if !ok || u.Node.Type() != decimalType {
		return
	}
	switch u.Operator {
	case "-":
		call := &ast.CallNode{Callee: &ast.IdentifierNode{Value: "_neg"}, Arguments: []ast.Node{u.Node}}
		call.SetType(decimalType)
		ast.Patch(node, call)
	case "+":
		ast.Patch(node, u.Node)
	default:
		return
	}
	v.applied = true
}

// Reset and ShouldRepeat make the checker run the visitor until nothing
// changes, as it does for operator overloading.
func (v *decimalNegation) Reset()             { v.applied = false }
func (v *decimalNegation) ShouldRepeat() bool { return v.applied }

// toDecimal converts an operand of an overloaded operator. Floats only come
// from functions such as float() or **, and are taken at their shortest
// round-tripping value.
func toDecimal(x any) (decimal.Decimal, error) {
	switch x := x.(type) {
	case decimal.Decimal:
		return x, nil
	case int:
		return decimal.NewFromInt(int64(x)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return decimal.Decimal{}, fmt.Errorf("%v is not a number that points can be made of", x)
		}
		return boundDecimal(decimal.NewFromFloat(x))
	}
	panic(fmt.Sprintf("unexpected operand %T", x))
}

var (
	errDivByZero = errors.New("division by zero")
	errOverflow  = errors.New("integer overflow")
)

// Operand type pairs for which operators are overloaded: anything involving
// a decimal, so money never goes through float64.
var (
	dd = new(func(decimal.Decimal, decimal.Decimal) decimal.Decimal)
	di = new(func(decimal.Decimal, int) decimal.Decimal)
	id = new(func(int, decimal.Decimal) decimal.Decimal)
	df = new(func(decimal.Decimal, float64) decimal.Decimal)
	fd = new(func(float64, decimal.Decimal) decimal.Decimal)
	ii = new(func(int, int) decimal.Decimal)

	ddB = new(func(decimal.Decimal, decimal.Decimal) bool)
	diB = new(func(decimal.Decimal, int) bool)
	idB = new(func(int, decimal.Decimal) bool)
	dfB = new(func(decimal.Decimal, float64) bool)
	fdB = new(func(float64, decimal.Decimal) bool)
)

func arith(op func(a, b decimal.Decimal) (decimal.Decimal, error)) func(...any) (any, error) {
	return func(args ...any) (any, error) {
		a, err := toDecimal(args[0])
		if err != nil {
			return nil, err
		}
		b, err := toDecimal(args[1])
		if err != nil {
			return nil, err
		}
		d, err := op(a, b)
		if err != nil {
			return nil, err
		}
		return boundDecimal(d)
	}
}

func compare(op func(c int) bool) func(...any) (any, error) {
	return func(args ...any) (any, error) {
		a, err := toDecimal(args[0])
		if err != nil {
			return nil, err
		}
		b, err := toDecimal(args[1])
		if err != nil {
			return nil, err
		}
		return op(a.Cmp(b)), nil
	}
}

// integer checks an operation on two integers for overflow, which Go's
// arithmetic would let wrap around into a wrong number of points.
func integer(op func(a, b int) (int, bool)) func(...any) (any, error) {
	return func(args ...any) (any, error) {
		r, ok := op(args[0].(int), args[1].(int))
		if !ok {
			return nil, errOverflow
		}
		return r, nil
	}
}

var intOp = new(func(int, int) int)

// decimalOptions declares the decimal operator functions and the operator
// overloads that use them. Integer division is overloaded too, so 7 / 2 is
// exactly 3.5 rather than a float.
var decimalOptions = []expr.Option{
	expr.Function("_add", arith(func(a, b decimal.Decimal) (decimal.Decimal, error) { return a.Add(b), nil }), dd, di, id, df, fd),
	expr.Function("_sub", arith(func(a, b decimal.Decimal) (decimal.Decimal, error) { return a.Sub(b), nil }), dd, di, id, df, fd),
	expr.Function("_mul", arith(func(a, b decimal.Decimal) (decimal.Decimal, error) { return a.Mul(b), nil }), dd, di, id, df, fd),
	// ii comes before the float overloads: the final check tries them in
	// order, and trying one that takes a float turns an integer literal
	// into a float for good.
	expr.Function("_div", arith(func(a, b decimal.Decimal) (decimal.Decimal, error) {
		if b.IsZero() {
			return decimal.Decimal{}, errDivByZero
		}
		return a.Div(b), nil
	}), dd, di, id, ii, df, fd),
	expr.Function("_mod", arith(func(a, b decimal.Decimal) (decimal.Decimal, error) {
		if b.IsZero() {
			return decimal.Decimal{}, errDivByZero
		}
		return a.Mod(b), nil
	}), dd, di, id, df, fd),
	expr.Function("_neg", func(args ...any) (any, error) { return args[0].(decimal.Decimal).Neg(), nil },
		new(func(decimal.Decimal) decimal.Decimal)),
	expr.Function("_iadd", integer(func(a, b int) (int, bool) {
		r := a + b
		return r, (r > a) == (b > 0)
	}), intOp),
	expr.Function("_isub", integer(func(a, b int) (int, bool) {
		r := a - b
		return r, (r < a) == (b > 0)
	}), intOp),
	expr.Function("_imul", integer(func(a, b int) (int, bool) {
		if a == 0 || b == 0 {
			return 0, true
		}
		r := a * b
		return r, r/b == a && !(a == -1 && b == math.MinInt) && !(b == -1 && a == math.MinInt)
	}), intOp),
	expr.Function("_lt", compare(func(c int) bool { return c < 0 }), ddB, diB, idB, dfB, fdB),
	expr.Function("_le", compare(func(c int) bool { return c <= 0 }), ddB, diB, idB, dfB, fdB),
	expr.Function("_gt", compare(func(c int) bool { return c > 0 }), ddB, diB, idB, dfB, fdB),
	expr.Function("_ge", compare(func(c int) bool { return c >= 0 }), ddB, diB, idB, dfB, fdB),
	expr.Function("_eq", compare(func(c int) bool { return c == 0 }), ddB, diB, idB, dfB, fdB),
	expr.Function("_ne", compare(func(c int) bool { return c != 0 }), ddB, diB, idB, dfB, fdB),
	// "in" compares a decimal by value, so 10.50 is in [10.5, 20].
	expr.Function("_in", func(args ...any) (any, error) {
		x := args[0].(decimal.Decimal)
		for _, e := range args[1].([]any) {
			switch e.(type) {
			case decimal.Decimal, int, float64:
				d, err := toDecimal(e)
				if err == nil && x.Equal(d) {
					return true, nil
				}
			}
		}
		return false, nil
	}, new(func(decimal.Decimal, []any) bool)),
	expr.Operator("+", "_add", "_iadd"),
	expr.Operator("-", "_sub", "_isub"),
	expr.Operator("*", "_mul", "_imul"),
	expr.Operator("/", "_div"),
	expr.Operator("%", "_mod"),
	expr.Operator("<", "_lt"),
	expr.Operator("<=", "_le"),
	expr.Operator(">", "_gt"),
	expr.Operator(">=", "_ge"),
	expr.Operator("==", "_eq"),
	expr.Operator("!=", "_ne"),
	expr.Operator("in", "_in"),
}
