package engine

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
)

// MemberInput enrols a member; every field is optional.
type MemberInput struct {
	ExternalID string            `json:"external_id,omitempty"`
	Email      string            `json:"email,omitempty"`
	Phone      string            `json:"phone,omitempty"`
	Name       string            `json:"name,omitempty"`
	Birthday   string            `json:"birthday,omitempty"`
	ReferrerID string            `json:"referrer_id,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// MemberPatch changes a member; nil fields stay as they are, and an empty
// string clears an optional field. Attributes merge into the member's, as
// a JSON merge patch does: a key with a value sets it, a key with null
// removes it, and keys not named stay.
type MemberPatch struct {
	// ExternalID replaces the member's card: the old number finds nobody
	// afterwards.
	ExternalID *string            `json:"external_id"`
	Name       *string            `json:"name"`
	Email      *string            `json:"email"`
	Phone      *string            `json:"phone"`
	Birthday   *string            `json:"birthday"`
	Status     *string            `json:"status"`
	Attributes map[string]*string `json:"attributes"`
}

// MemberView is a member as the API shows it.
type MemberView struct {
	ID         string            `json:"id"`
	ExternalID string            `json:"external_id,omitempty"`
	Email      string            `json:"email,omitempty"`
	Phone      string            `json:"phone,omitempty"`
	Name       string            `json:"name,omitempty"`
	Birthday   string            `json:"birthday,omitempty"`
	ReferrerID string            `json:"referrer_id,omitempty"`
	Status     string            `json:"status"`
	EnrolledAt time.Time         `json:"enrolled_at"`
	Tier       TierRef           `json:"tier"`
	Balance    BalanceSummary    `json:"balance"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Analytics  *AnalyticsView    `json:"analytics,omitempty"`
	// MergedInto is the survivor of a merged member.
	MergedInto string `json:"merged_into,omitempty"`
}

// TierRef names a member's tier and since when they hold it.
type TierRef struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}

// AnalyticsView is the analytics part of a member, as of the last run of
// the analytics job; docs/ANALYTICS.md defines each figure.
type AnalyticsView struct {
	ComputedAt time.Time `json:"computed_at"`
	Segment    string    `json:"segment"`
	Lifecycle  string    `json:"lifecycle"`
	ChurnRisk  bool      `json:"churn_risk"`
	// RecencyDays is null for a member who never purchased.
	RecencyDays *int64 `json:"recency_days"`
	Frequency   int64  `json:"frequency"`
	Monetary    string `json:"monetary"`
	RScore      int    `json:"r_score"`
	FScore      int    `json:"f_score"`
	MScore      int    `json:"m_score"`
	RFM         string `json:"rfm"`
	// UsualIntervalDays is null with fewer than two purchases in the window.
	UsualIntervalDays *float64 `json:"usual_interval_days"`
	CLV               string   `json:"clv"`
	RealisedValue     string   `json:"realised_value"`
	PotentialValue    string   `json:"potential_value"`
	Referrals         int64    `json:"referrals"`
	ReferredSpend     string   `json:"referred_spend"`
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normalizePhone keeps digits and a leading plus, so "+1 555-0100" and
// "+15550100" are the same member.
func normalizePhone(s string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		if r == '+' && i == 0 || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func checkEmail(s string) error {
	if err := checkText("email", s, MaxTextLen); err != nil {
		return err
	}
	at := strings.IndexByte(s, '@')
	if s != "" && (at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n")) {
		return FieldErrorf(EINVALID, "email", "is not an email address")
	}
	return nil
}

func checkPhone(raw, norm string) error {
	if err := checkText("phone", raw, 32); err != nil {
		return err
	}
	if raw != "" && len(strings.TrimPrefix(norm, "+")) < 4 {
		return FieldErrorf(EINVALID, "phone", "is not a phone number")
	}
	return nil
}

func checkBirthday(s string, now time.Time) error {
	if s == "" {
		return nil
	}
	d, err := time.Parse(dateLayout, s)
	if err != nil {
		return FieldErrorf(EINVALID, "birthday", "must be a date like 1990-04-12")
	}
	if d.After(now) {
		return FieldErrorf(EINVALID, "birthday", "must not be in the future")
	}
	return nil
}

func checkAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return FieldErrorf(EINVALID, "attributes", "at most %d attributes", MaxAttributes)
	}
	for k, v := range attrs {
		if err := checkAttribute(k, &v); err != nil {
			return err
		}
	}
	return nil
}

// checkAttribute checks one key and its value; a nil value (a patch's
// removal) has nothing to check.
func checkAttribute(k string, v *string) error {
	if k == "" || len(k) > maxAttributeKey {
		return FieldErrorf(EINVALID, "attributes", "keys must be 1–%d characters", maxAttributeKey)
	}
	if v == nil {
		return nil
	}
	return checkText("attributes."+k, *v, MaxTextLen)
}

// mergeAttributes applies a patch's attributes to a member's: set the
// keys with a value, remove those with null. The result may not pass
// MaxAttributes; it is nil when no key is left.
func mergeAttributes(have map[string]string, patch map[string]*string) (map[string]string, error) {
	out := make(map[string]string, len(have)+len(patch))
	for k, v := range have {
		out[k] = v
	}
	for k, v := range patch {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	if len(out) > MaxAttributes {
		return nil, FieldErrorf(EINVALID, "attributes", "at most %d attributes (the member has %d; remove some with null)", MaxAttributes, len(have))
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// CreateMember enrols a member in the lowest tier and grants the enrolment
// bonus of the rules (Enrol, without telling a retry apart).
func (e *Engine) CreateMember(ctx context.Context, in MemberInput) (*MemberView, error) {
	v, _, err := e.Enrol(ctx, in)
	return v, err
}

// Enrol enrols a member in the lowest tier and grants the enrolment bonus
// of the rules. A till that did not hear the answer sends the same body
// again: when a member with the external id exists and was enrolled with
// these very fields, the answer is that member and replayed is set. Any
// other clash with a held external id, email or phone is a conflict that
// names the field and, in Info, the holder's id.
func (e *Engine) Enrol(ctx context.Context, in MemberInput) (view *MemberView, replayed bool, err error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, false, err
	}
	in.Email = normalizeEmail(in.Email)
	phone := normalizePhone(in.Phone)
	if err := checkMemberInput(in, phone, now); err != nil {
		return nil, false, err
	}
	m := &Member{
		ID:         uuid.NewString(),
		ExternalID: in.ExternalID,
		Email:      in.Email,
		Phone:      phone,
		Name:       in.Name,
		Birthday:   in.Birthday,
		ReferrerID: in.ReferrerID,
		Status:     StatusActive,
		EnrolledAt: now,
		Attributes: in.Attributes,
		Tier:       live.prog.Tiers.Levels[0].Name,
		TierSince:  now,
	}
	bonusIDs := newIDs(now, 2)
	err = e.store.Update(ctx, func(tx Tx) error {
		view, replayed = nil, false
		m := m.clone()
		if held, err := e.enrolledBefore(tx, live, m, now); err != nil || held != nil {
			view, replayed = held, held != nil
			return err
		}
		if m.ReferrerID != "" {
			ref, err := tx.Member(m.ReferrerID)
			if err != nil {
				return err
			}
			if ref == nil {
				return FieldErrorf(EINVALID, "referrer_id", "no member with id %q", m.ReferrerID)
			}
		}
		// PutMember refuses a taken email, phone or external id before it
		// writes; the bonus comes after, so a refusal writes nothing.
		if err := tx.PutMember(m); err != nil {
			return err
		}
		w := writer{tx: tx, now: now, live: live}
		enrol := live.prog.Bonuses.Enrol
		if enrol > 0 {
			if err := w.credit(m, creditSpec{
				entryID: bonusIDs[0], lotID: bonusIDs[1], typ: LedgerBonus,
				points: enrol, at: now, ref: "enrol:" + m.ID, note: "enrolment bonus",
			}); err != nil {
				return err
			}
			if err := tx.PutMember(m); err != nil {
				return err
			}
		}
		view, err = memberView(tx, live, m, now)
		if err != nil {
			return err
		}
		if err := w.emit(EventMemberEnrolled, m.ID, memberData{Member: view}); err != nil {
			return err
		}
		return w.bonus(m, BonusEnrolment, enrol)
	})
	if err != nil {
		return nil, false, err
	}
	return view, replayed, nil
}

// enrolledBefore answers an enrolment whose external id, email or phone
// another member holds: the holder's view when the holder has the same
// external id and was enrolled with the same fields (a retry), else a
// conflict naming the field and the holder. It returns nil, nil when no
// key is held.
func (e *Engine) enrolledBefore(tx Tx, live *liveRules, m *Member, now time.Time) (*MemberView, error) {
	for _, k := range []struct{ key, value string }{
		{KeyExternalID, m.ExternalID}, {KeyEmail, m.Email}, {KeyPhone, m.Phone},
	} {
		held, err := tx.MemberByKey(k.key, k.value)
		if err != nil {
			return nil, err
		}
		if held == nil {
			continue
		}
		if k.key == KeyExternalID && sameEnrolment(held, m) {
			return memberView(tx, live, held, now)
		}
		// A merged member's key is the survivor's to hold.
		if held, err = survivor(tx, held); err != nil {
			return nil, err
		}
		return nil, &Error{
			Code: ECONFLICT, Field: k.key, Message: k.key + " is already used by another member",
			Info: map[string]string{"member_id": held.ID},
		}
	}
	return nil, nil
}

// sameEnrolment tells whether held was enrolled with the fields of m.
func sameEnrolment(held, m *Member) bool {
	if held.Status == StatusMerged || held.Status == StatusErased ||
		held.ExternalID != m.ExternalID || held.Email != m.Email || held.Phone != m.Phone ||
		held.Name != m.Name || held.Birthday != m.Birthday || held.ReferrerID != m.ReferrerID {
		return false
	}
	return sameAttributes(held.Attributes, m.Attributes)
}

func checkMemberInput(in MemberInput, phone string, now time.Time) error {
	if in.ExternalID != "" {
		if err := checkClientID("external_id", in.ExternalID); err != nil {
			return err
		}
	}
	if err := checkEmail(in.Email); err != nil {
		return err
	}
	if err := checkPhone(in.Phone, phone); err != nil {
		return err
	}
	if err := checkText("name", in.Name, MaxTextLen); err != nil {
		return err
	}
	if err := checkBirthday(in.Birthday, now); err != nil {
		return err
	}
	if in.ReferrerID != "" {
		if err := checkClientID("referrer_id", in.ReferrerID); err != nil {
			return err
		}
	}
	return checkAttributes(in.Attributes)
}

// Member returns a member by id.
func (e *Engine) Member(ctx context.Context, id string) (*MemberView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	var view *MemberView
	err = e.store.View(ctx, func(tx Tx) error {
		m, err := getMember(tx, id)
		if err != nil {
			return err
		}
		view, err = memberView(tx, live, m, now)
		return err
	})
	return view, err
}

// FindMembers looks members up by one unique key; the answer is empty when
// nobody matches.
func (e *Engine) FindMembers(ctx context.Context, key, value string) ([]*MemberView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	switch key {
	case KeyEmail:
		value = normalizeEmail(value)
	case KeyPhone:
		value = normalizePhone(value)
	case KeyExternalID:
	default:
		return nil, Errorf(EINVALID, "look members up by external_id, email or phone")
	}
	views := []*MemberView{}
	err = e.store.View(ctx, func(tx Tx) error {
		m, err := tx.MemberByKey(key, value)
		if err != nil || m == nil {
			return err
		}
		// A merged member's identifiers find the survivor; an erased
		// member is found by nothing.
		if m, err = survivor(tx, m); err != nil || m.Status == StatusErased {
			return err
		}
		v, err := memberView(tx, live, m, now)
		if err != nil {
			return err
		}
		views = append(views, v)
		return nil
	})
	return views, err
}

// UpdateMember applies a patch to a member.
func (e *Engine) UpdateMember(ctx context.Context, id string, p MemberPatch) (*MemberView, error) {
	now := e.Now()
	live, err := e.mustProgram()
	if err != nil {
		return nil, err
	}
	if p.Status != nil && *p.Status != StatusActive && *p.Status != StatusBlocked {
		return nil, FieldErrorf(EINVALID, "status", "must be %q or %q", StatusActive, StatusBlocked)
	}
	if p.Email != nil {
		*p.Email = normalizeEmail(*p.Email)
		if err := checkEmail(*p.Email); err != nil {
			return nil, err
		}
	}
	var phone string
	if p.Phone != nil {
		phone = normalizePhone(*p.Phone)
		if err := checkPhone(*p.Phone, phone); err != nil {
			return nil, err
		}
	}
	if p.ExternalID != nil && *p.ExternalID != "" {
		if err := checkClientID("external_id", *p.ExternalID); err != nil {
			return nil, err
		}
	}
	if p.Name != nil {
		if err := checkText("name", *p.Name, MaxTextLen); err != nil {
			return nil, err
		}
	}
	if p.Birthday != nil {
		if err := checkBirthday(*p.Birthday, now); err != nil {
			return nil, err
		}
	}
	for k, v := range p.Attributes {
		if err := checkAttribute(k, v); err != nil {
			return nil, err
		}
	}
	var view *MemberView
	err = e.store.Update(ctx, func(tx Tx) error {
		m, err := getMember(tx, id)
		if err != nil {
			return err
		}
		if m.Status == StatusMerged || m.Status == StatusErased {
			return Errorf(EUNPROCESSABLE, "member %s is %s and cannot be changed", m.ID, m.Status)
		}
		before := m.clone()
		if p.ExternalID != nil {
			m.ExternalID = *p.ExternalID
		}
		if p.Name != nil {
			m.Name = *p.Name
		}
		if p.Email != nil {
			m.Email = *p.Email
		}
		if p.Phone != nil {
			m.Phone = phone
		}
		if p.Birthday != nil {
			m.Birthday = *p.Birthday
		}
		if p.Status != nil {
			m.Status = *p.Status
		}
		if p.Attributes != nil {
			merged, err := mergeAttributes(m.Attributes, p.Attributes)
			if err != nil {
				return err
			}
			m.Attributes = merged
		}
		changed := memberChanges(before, m)
		if len(changed) == 0 {
			view, err = memberView(tx, live, m, now)
			return err
		}
		if err := tx.PutMember(m); err != nil {
			return err
		}
		if view, err = memberView(tx, live, m, now); err != nil {
			return err
		}
		return emit(tx, now, EventMemberUpdated, m.ID, memberData{Member: view, Changed: changed})
	})
	return view, err
}

func getMember(tx Tx, id string) (*Member, error) {
	m, err := tx.Member(id)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, Errorf(ENOTFOUND, "member %q not found", id)
	}
	return m, nil
}

func memberView(tx Tx, live *liveRules, m *Member, now time.Time) (*MemberView, error) {
	bal, err := balanceSummary(tx, m, now)
	if err != nil {
		return nil, err
	}
	v := &MemberView{
		ID: m.ID, ExternalID: m.ExternalID, Email: m.Email, Phone: m.Phone, Name: m.Name,
		Birthday: m.Birthday, ReferrerID: m.ReferrerID, Status: m.Status, EnrolledAt: m.EnrolledAt,
		Tier:       TierRef{Name: m.Tier, Since: m.TierSince},
		Balance:    bal,
		Attributes: m.Attributes,
		MergedInto: m.MergedInto,
	}
	v.Analytics = analyticsView(live.prog, m.Analytics)
	return v, nil
}

// clone copies a member so a batched transaction that runs twice starts
// from the same value both times.
func (m *Member) clone() *Member {
	c := *m
	if m.Attributes != nil {
		c.Attributes = make(map[string]string, len(m.Attributes))
		for k, v := range m.Attributes {
			c.Attributes[k] = v
		}
	}
	if m.Analytics != nil {
		a := *m.Analytics
		c.Analytics = &a
	}
	return &c
}
