package engine

// The data of each event type, as the catalogue of docs/API.md gives it.
// Every type here is written by the command whose change it reports, in
// that command's transaction.

type memberData struct {
	Member  *MemberView `json:"member"`
	Changed []string    `json:"changed,omitempty"`
}

type purchaseEventData struct {
	PurchaseID string         `json:"purchase_id"`
	MemberID   string         `json:"member_id"`
	Amount     string         `json:"amount"`
	Currency   string         `json:"currency"`
	Points     int64          `json:"points"`
	Breakdown  []RuleLine     `json:"breakdown"`
	Balance    BalanceSummary `json:"balance"`
	Tier       string         `json:"tier"`
	StoreID    string         `json:"store_id,omitempty"`
}

type refundEventData struct {
	RefundID   string         `json:"refund_id"`
	PurchaseID string         `json:"purchase_id"`
	MemberID   string         `json:"member_id"`
	Amount     string         `json:"amount"`
	Points     int64          `json:"points"`
	Balance    BalanceSummary `json:"balance"`
}

type redemptionEventData struct {
	RedemptionID string         `json:"redemption_id"`
	MemberID     string         `json:"member_id"`
	Points       int64          `json:"points"`
	Reward       string         `json:"reward,omitempty"`
	Balance      BalanceSummary `json:"balance"`
}

type adjustedEventData struct {
	AdjustmentID string         `json:"adjustment_id"`
	MemberID     string         `json:"member_id"`
	Points       int64          `json:"points"`
	Reason       string         `json:"reason"`
	By           string         `json:"by,omitempty"`
	Balance      BalanceSummary `json:"balance"`
}

type expiredEventData struct {
	MemberID string         `json:"member_id"`
	Points   int64          `json:"points"`
	Balance  BalanceSummary `json:"balance"`
}

type tierEventData struct {
	MemberID  string `json:"member_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Direction string `json:"direction"`
}

type rulesEventData struct {
	Version int    `json:"version"`
	Hash    string `json:"hash"`
	By      string `json:"by"`
}

type analyticsEventData struct {
	MemberID string         `json:"member_id"`
	Changed  map[string]any `json:"changed"`
}

type webhookTestData struct {
	WebhookID string `json:"webhook_id"`
}

// Bonus kinds of bonus.granted besides a rule's name.
const (
	BonusEnrolment = "enrolment"
	BonusReferral  = "referral"
	BonusBirthday  = "birthday"
)

// bonus records a bonus.granted of points to m.
func (w writer) bonus(m *Member, kind string, points int64) error {
	if points <= 0 {
		return nil
	}
	return w.emit(EventBonusGranted, m.ID, bonusData{MemberID: m.ID, Kind: kind, Points: points})
}

// tierChanged records a tier.changed of m from the tier from to the one m
// holds now; up tells the direction.
func (w writer) tierChanged(m *Member, from string, up bool) error {
	if from == m.Tier {
		return nil
	}
	dir := "down"
	if up {
		dir = "up"
	}
	return w.emit(EventTierChanged, m.ID, tierEventData{MemberID: m.ID, From: from, To: m.Tier, Direction: dir})
}

// memberChanges lists the fields of the member JSON whose value differs
// between a and b.
func memberChanges(a, b *Member) []string {
	var out []string
	add := func(name string, differs bool) {
		if differs {
			out = append(out, name)
		}
	}
	add("external_id", a.ExternalID != b.ExternalID)
	add("email", a.Email != b.Email)
	add("phone", a.Phone != b.Phone)
	add("name", a.Name != b.Name)
	add("birthday", a.Birthday != b.Birthday)
	add("status", a.Status != b.Status)
	add("attributes", !mapsEqual(a.Attributes, b.Attributes))
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// analyticsChanges gives, for each figure of the member.analytics_changed
// event whose value differs, the old and the new value. Figures that move
// with every purchase (CLV, scores) are left out: the event tells a
// member's standing, not its arithmetic.
func analyticsChanges(a, b *Analytics) map[string]any {
	var old Analytics
	if a != nil {
		old = *a
	}
	out := map[string]any{}
	if old.Segment != b.Segment {
		out["segment"] = []string{old.Segment, b.Segment}
	}
	if old.Lifecycle != b.Lifecycle {
		out["lifecycle"] = []string{old.Lifecycle, b.Lifecycle}
	}
	if old.ChurnRisk != b.ChurnRisk {
		out["churn_risk"] = []bool{old.ChurnRisk, b.ChurnRisk}
	}
	return out
}
