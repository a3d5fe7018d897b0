package engine

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// ImportLine is one member of a bulk import, as a line of the file has
// it; external_id is required, the rest optional.
type ImportLine struct {
	ExternalID     string            `json:"external_id"`
	Email          string            `json:"email,omitempty"`
	Phone          string            `json:"phone,omitempty"`
	Name           string            `json:"name,omitempty"`
	Birthday       string            `json:"birthday,omitempty"`
	EnrolledAt     string            `json:"enrolled_at,omitempty"`
	Attributes     map[string]string `json:"attributes,omitempty"`
	Tier           string            `json:"tier,omitempty"`
	Points         int64             `json:"points,omitempty"`
	PointsExpireAt string            `json:"points_expire_at,omitempty"`
}

// ImportError is the problem of one line of an import.
type ImportError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// ImportReport is the answer to an import: how many lines created a
// member, found it already as the line says, or failed, and why each
// failed.
type ImportReport struct {
	Created   int           `json:"created"`
	Unchanged int           `json:"unchanged"`
	Failed    int           `json:"failed"`
	Errors    []ImportError `json:"errors"`
}

// Fail records a line's problem: an *Error's field and message, or the
// message of any other error.
func (r *ImportReport) Fail(line int, err error) {
	ie := ImportError{Line: line, Message: err.Error()}
	if e, ok := err.(*Error); ok {
		ie.Field, ie.Message = e.Field, e.Message
	}
	r.Failed++
	r.Errors = append(r.Errors, ie)
}

// Add adds another report's counts and errors to r.
func (r *ImportReport) Add(o *ImportReport) {
	r.Created += o.Created
	r.Unchanged += o.Unchanged
	r.Failed += o.Failed
	r.Errors = append(r.Errors, o.Errors...)
}

// NumberedLine is an import line with its line number in the file.
type NumberedLine struct {
	N    int
	Line ImportLine
}

// importedData is the data of a points.imported event.
type importedData struct {
	MemberID  string    `json:"member_id"`
	Points    int64     `json:"points"`
	ExpiresAt time.Time `json:"expires_at"`
}

// importRef is the ledger ref of an import's opening balance.
const importRef = "import"

// importMember is a line made into the member (and opening balance) it
// creates, checked.
type importMember struct {
	n         int
	m         *Member
	points    int64
	expiresAt time.Time
	ids       [3]string // member (random, as Enrol makes it), ledger entry and lot (minted at now)
	tierGiven bool
	enrolled  bool // enrolled_at was given
	// expiryGiven: points_expire_at was given, so a re-run must agree
	// with it (an expiry from the rules moves with the import's time).
	expiryGiven bool
}

// Import writes a chunk of import lines in one transaction: each line
// creates its member, with the profile, enrolment date, tier and opening
// balance it gives, and no enrolment bonus; a line whose card exists
// already is unchanged when it agrees with the member, and an error when
// it does not. Every check of a line comes before its writes, so a line is
// applied whole or not at all, and lines that fail leave the others be.
// The caller streams a file through Import a chunk at a time, so that
// tills' writes go between chunks.
func (e *Engine) Import(ctx context.Context, lines []NumberedLine) (*ImportReport, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	report := &ImportReport{Errors: []ImportError{}}
	var ready []importMember
	for _, nl := range lines {
		im, err := checkImportLine(live, nl, now)
		if err != nil {
			report.Fail(nl.N, err)
			continue
		}
		ready = append(ready, im)
	}
	var chunk *ImportReport
	err = e.store.Update(ctx, func(tx Tx) error {
		chunk = &ImportReport{Errors: []ImportError{}}
		w := writer{tx: tx, now: now, live: live}
		keys := &keyIndex{tx: tx, held: map[[2]string]*Member{}}
		if err := keys.load(ready); err != nil {
			return err
		}
		for _, im := range ready {
			m := im.m.clone()
			held, err := keys.find(KeyExternalID, m.ExternalID)
			if err != nil {
				return err
			}
			if held != nil {
				if err := sameImport(tx, held, im); err != nil {
					chunk.Fail(im.n, err)
				} else {
					chunk.Unchanged++
				}
				continue
			}
			if err := keys.free(m); err != nil {
				chunk.Fail(im.n, err)
				continue
			}
			// The member is written once, with the balance its lot and
			// ledger entry (written after it: Store, "Members before")
			// give it.
			if im.points > 0 {
				m.Points, m.LedgerSeq = im.points, 1
			}
			if err := tx.PutMember(m); err != nil {
				return err
			}
			keys.add(m)
			if im.points > 0 {
				if err := tx.PutLot(&Lot{
					ID: im.ids[2], MemberID: m.ID, Points: im.points, Remaining: im.points,
					EarnedAt: now, AvailableAt: now, ExpiresAt: im.expiresAt, Ref: importRef,
				}); err != nil {
					return err
				}
				if err := tx.AppendLedger(&LedgerEntry{
					ID: im.ids[1], MemberID: m.ID, Seq: 1, Type: LedgerImport, Points: im.points, BalanceAfter: im.points,
					At: now, Ref: importRef, RulesVersion: live.version.Version, Note: "opening balance",
				}); err != nil {
					return err
				}
				if err := w.emit(EventPointsImported, m.ID, importedData{MemberID: m.ID, Points: im.points, ExpiresAt: im.expiresAt}); err != nil {
					return err
				}
			}
			// Followers learn of an imported member as of an enrolled one.
			view, err := memberView(tx, live, m, now)
			if err != nil {
				return err
			}
			if err := w.emit(EventMemberEnrolled, m.ID, memberData{Member: view}); err != nil {
				return err
			}
			chunk.Created++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	report.Add(chunk)
	return report, nil
}

// checkImportLine checks a line and makes it the member it would create.
func checkImportLine(live *liveRules, nl NumberedLine, now time.Time) (importMember, error) {
	prog := live.prog
	l := nl.Line
	if l.ExternalID == "" {
		return importMember{}, FieldErrorf(EINVALID, "external_id", "is required")
	}
	in := MemberInput{ExternalID: l.ExternalID, Email: normalizeEmail(l.Email), Phone: l.Phone, Name: l.Name, Birthday: l.Birthday, Attributes: l.Attributes}
	phone := normalizePhone(l.Phone)
	if err := checkMemberInput(in, phone, now); err != nil {
		return importMember{}, err
	}
	im := importMember{n: nl.N, ids: [3]string{uuid.NewString(), NewTimeID(now), NewTimeID(now)}}
	enrolled := now
	if l.EnrolledAt != "" {
		t, err := parseTime("enrolled_at", l.EnrolledAt, now)
		if err != nil {
			return importMember{}, err
		}
		if t.After(now) {
			return importMember{}, FieldErrorf(EINVALID, "enrolled_at", "must not be in the future")
		}
		enrolled, im.enrolled = t, true
	}
	tier := prog.Tiers.Levels[0].Name
	if l.Tier != "" {
		if prog.Tiers.Index(l.Tier) < 0 {
			return importMember{}, FieldErrorf(EINVALID, "tier", "is not a tier of the rules (%s)", tierNames(live))
		}
		tier, im.tierGiven = l.Tier, true
	}
	if l.Points < 0 || l.Points > MaxPoints {
		return importMember{}, FieldErrorf(EINVALID, "points", "must be a whole number from 0 to %d", MaxPoints)
	}
	im.points = l.Points
	im.expiresAt = prog.ExpiresAt(now)
	if l.PointsExpireAt != "" {
		t, err := parseTime("points_expire_at", l.PointsExpireAt, now)
		if err != nil {
			return importMember{}, err
		}
		if !t.After(now) {
			return importMember{}, FieldErrorf(EINVALID, "points_expire_at", "must be in the future")
		}
		im.expiresAt, im.expiryGiven = t, true
	}
	im.m = &Member{
		ID: im.ids[0], ExternalID: in.ExternalID, Email: in.Email, Phone: phone, Name: in.Name,
		Birthday: in.Birthday, Status: StatusActive, EnrolledAt: enrolled, Attributes: in.Attributes,
		// The tier is held as if reached now: its grace and window run
		// from the import, as for a member who had just qualified.
		Tier: tier, TierSince: now,
	}
	return im, nil
}

func tierNames(live *liveRules) string {
	s := ""
	for i, l := range live.prog.Tiers.Levels {
		if i > 0 {
			s += ", "
		}
		s += l.Name
	}
	return s
}

// MembersFinder is a shortcut a Tx may offer: the members that hold any
// of values of one unique key, in one read, where MemberByKey would take
// one a value (on PostgreSQL, a round trip each).
type MembersFinder interface {
	MembersByKeys(key string, values []string) ([]*Member, error)
}

// keyIndex answers an import chunk's lookups of unique keys: from one
// read of all of them where the Tx offers MembersFinder, kept up to date
// with the members the chunk creates; else from the Tx, a value at a time.
type keyIndex struct {
	tx     Tx
	loaded bool
	held   map[[2]string]*Member // (key, value) → its holder
}

var importKeys = []string{KeyExternalID, KeyEmail, KeyPhone}

func keyOf(m *Member, key string) string {
	switch key {
	case KeyEmail:
		return m.Email
	case KeyPhone:
		return m.Phone
	}
	return m.ExternalID
}

func (k *keyIndex) load(lines []importMember) error {
	f, ok := k.tx.(MembersFinder)
	if !ok {
		return nil
	}
	for _, key := range importKeys {
		var values []string
		for _, im := range lines {
			if v := keyOf(im.m, key); v != "" {
				values = append(values, v)
			}
		}
		if len(values) == 0 {
			continue
		}
		ms, err := f.MembersByKeys(key, values)
		if err != nil {
			return err
		}
		for _, m := range ms {
			k.held[[2]string{key, keyOf(m, key)}] = m
		}
	}
	k.loaded = true
	return nil
}

func (k *keyIndex) find(key, value string) (*Member, error) {
	if value == "" {
		return nil, nil
	}
	if m, ok := k.held[[2]string{key, value}]; ok || k.loaded {
		return m, nil
	}
	return k.tx.MemberByKey(key, value)
}

func (k *keyIndex) add(m *Member) {
	for _, key := range importKeys {
		if v := keyOf(m, key); v != "" {
			k.held[[2]string{key, v}] = m
		}
	}
}

// free refuses a new member whose email or phone another holds.
func (k *keyIndex) free(m *Member) error {
	for _, key := range []string{KeyEmail, KeyPhone} {
		held, err := k.find(key, keyOf(m, key))
		if err != nil {
			return err
		}
		if held != nil {
			return FieldErrorf(ECONFLICT, key, "is already used by member %s", held.ID)
		}
	}
	return nil
}

// sameImport tells whether the member held for a line's card is what the
// line says: the same profile, and the fields the line gives (enrolment
// date, tier, opening balance) as they were imported. It names the first
// field that differs.
func sameImport(tx Tx, held *Member, im importMember) error {
	m := im.m
	differs := func(field string) error {
		return FieldErrorf(ECONFLICT, field, "differs from member %s, which an earlier import or enrolment stored with this external_id", held.ID)
	}
	switch {
	case held.Status == StatusMerged || held.Status == StatusErased:
		return FieldErrorf(ECONFLICT, "external_id", "is member %s's, who is %s", held.ID, held.Status)
	case held.Email != m.Email:
		return differs("email")
	case held.Phone != m.Phone:
		return differs("phone")
	case held.Name != m.Name:
		return differs("name")
	case held.Birthday != m.Birthday:
		return differs("birthday")
	case !sameAttributes(held.Attributes, m.Attributes):
		return differs("attributes")
	case im.enrolled && !held.EnrolledAt.Equal(m.EnrolledAt):
		return differs("enrolled_at")
	case im.tierGiven && held.Tier != m.Tier:
		return differs("tier")
	}
	var imported int64
	first, err := tx.Ledger(held.ID, 2, 1)
	if err != nil {
		return err
	}
	if len(first) == 1 && first[0].Type == LedgerImport {
		imported = first[0].Points
	}
	if imported != im.points {
		return differs("points")
	}
	if imported > 0 && im.expiryGiven {
		lots, err := tx.Lots(held.ID)
		if err != nil {
			return err
		}
		// Any of them: a merge may have brought the merged member's own.
		agrees := false
		for _, l := range lots {
			agrees = agrees || l.Ref == importRef && l.ExpiresAt.Equal(im.expiresAt.Truncate(time.Microsecond))
		}
		if !agrees {
			return differs("points_expire_at")
		}
	}
	return nil
}

func sameAttributes(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if av, ok := a[k]; !ok || av != v {
			return false
		}
	}
	return true
}
