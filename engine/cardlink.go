package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// A card link is a URL a receipt prints (as a QR code) that shows a member
// their card without an API key. Its token is the member id and an expiry,
// signed with HMAC-SHA256 under a secret the engine creates once and keeps
// in the database, so that every server sharing the database accepts the
// links any of them issued, and a restart invalidates none.
const (
	// settingCardSecret holds the card links' HMAC key (32 random bytes).
	settingCardSecret = "cardlink.secret"
	// cardTokenVersion is the first byte of a token's payload, so that a
	// later format can be told apart from this one.
	cardTokenVersion = 1
	cardSecretLen    = 32
)

// Bounds of a card link's lifetime: long enough for a receipt kept a while,
// short enough that a lost receipt stops working.
const (
	DefaultCardLinkTTL = 720 * time.Hour
	MinCardLinkTTL     = time.Minute
	MaxCardLinkTTL     = 366 * 24 * time.Hour
)

// CardLink is a signed token for a member's card page and when it stops
// working.
type CardLink struct {
	Token     string
	ExpiresAt time.Time
}

// CardLinkTTL reads a card link's lifetime: empty is the default, else a
// duration as Go or the rules file writes one ("720h", "30d"), between
// MinCardLinkTTL and MaxCardLinkTTL.
func CardLinkTTL(s string) (time.Duration, error) {
	if s == "" {
		return DefaultCardLinkTTL, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		// Months have no fixed length, and a link's expiry is a fixed time.
		rd, rerr := rules.ParseDuration(s)
		if rerr != nil || rd.Months != 0 {
			return 0, FieldErrorf(EINVALID, "ttl", "is not a duration: write it like 720h or 30d")
		}
		d = rd.Fixed
	}
	if d < MinCardLinkTTL || d > MaxCardLinkTTL {
		return 0, FieldErrorf(EINVALID, "ttl", "must be between %s and %s", MinCardLinkTTL, MaxCardLinkTTL)
	}
	return d, nil
}

// IssueCardLink signs a link to the member's card page, valid for ttl from
// now. It writes nothing but the secret, the first time.
func (e *Engine) IssueCardLink(ctx context.Context, memberID string, ttl time.Duration) (*CardLink, error) {
	if ttl < MinCardLinkTTL || ttl > MaxCardLinkTTL {
		return nil, FieldErrorf(EINVALID, "ttl", "must be between %s and %s", MinCardLinkTTL, MaxCardLinkTTL)
	}
	now := e.Now()
	var secret []byte
	err := e.store.View(ctx, func(tx Tx) error {
		if _, err := getMember(tx, memberID); err != nil {
			return err
		}
		var err error
		secret, err = tx.Setting(settingCardSecret)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(secret) != cardSecretLen {
		if secret, err = e.createCardSecret(ctx); err != nil {
			return nil, err
		}
	}
	// Seconds are enough for an expiry, and keep the token short.
	expires := now.Add(ttl).Truncate(time.Second)
	return &CardLink{Token: signCardToken(secret, memberID, expires), ExpiresAt: expires}, nil
}

// createCardSecret makes the secret once: a server that finds one stored
// by another in the same transaction keeps that one, so two servers
// issuing their first links at once agree on the secret.
func (e *Engine) createCardSecret(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, cardSecretLen)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("making the card links' secret: %w", err)
	}
	var secret []byte
	err := e.store.Update(ctx, func(tx Tx) error {
		got, err := tx.Setting(settingCardSecret)
		if err != nil {
			return err
		}
		if len(got) == cardSecretLen {
			secret = got
			return nil
		}
		secret = fresh
		return tx.PutSetting(settingCardSecret, fresh)
	})
	return secret, err
}

func signCardToken(secret []byte, memberID string, expires time.Time) string {
	payload := make([]byte, 9, 9+len(memberID))
	payload[0] = cardTokenVersion
	binary.BigEndian.PutUint64(payload[1:], uint64(expires.Unix()))
	payload = append(payload, memberID...)
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(mac.Sum(nil))
}

// errNoCard is the one answer to every token that is not good: it says
// nothing about why, so that a guess learns nothing (not whether a member
// exists, nor that a token was once valid).
var errNoCard = Errorf(ENOTFOUND, "this card link is not valid")

// CardMember checks a card token and returns the member id it names; a
// token that is malformed, signed with another secret, altered or expired,
// or names a member that no longer exists, is not_found.
func (e *Engine) CardMember(ctx context.Context, token string) (string, error) {
	id, _, err := e.checkCardToken(ctx, token)
	return id, err
}

// checkCardToken returns the member id a good token names and its expiry.
func (e *Engine) checkCardToken(ctx context.Context, token string) (string, time.Time, error) {
	now := e.Now()
	body, sig, ok := strings.Cut(token, ".")
	if !ok {
		return "", time.Time{}, errNoCard
	}
	// Strict: a token has one spelling. Unstrict decoding ignores the last
	// character's spare bits, so a changed token would open the same card.
	enc := base64.RawURLEncoding.Strict()
	payload, err1 := enc.DecodeString(body)
	got, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || len(payload) < 10 || payload[0] != cardTokenVersion {
		return "", time.Time{}, errNoCard
	}
	var secret []byte
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		secret, err = tx.Setting(settingCardSecret)
		return err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	if len(secret) != cardSecretLen {
		return "", time.Time{}, errNoCard
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), got) {
		return "", time.Time{}, errNoCard
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(payload[1:9])), 0)
	if !now.Before(expires) {
		return "", time.Time{}, errNoCard
	}
	return string(payload[9:]), expires, nil
}

// CardPage is what a member's card page shows.
type CardPage struct {
	Program   string
	Member    *MemberView
	Balance   *Balance
	Rewards   []RewardOffer
	Coupons   []CouponView
	ExpiresAt time.Time
	// Currency and Location say how to write the page's money and times.
	Currency string
	Location *time.Location
}

// Card reads the card page a token names; see CardMember for the tokens
// refused.
func (e *Engine) Card(ctx context.Context, token string) (*CardPage, error) {
	id, expires, err := e.checkCardToken(ctx, token)
	if err != nil {
		return nil, err
	}
	page := &CardPage{ExpiresAt: expires}
	if page.Member, err = e.Member(ctx, id); err != nil {
		return nil, notFoundAsNoCard(err)
	}
	// A merged or erased member's links outlive the card they showed.
	if page.Member.Status == StatusMerged || page.Member.Status == StatusErased {
		return nil, errNoCard
	}
	if page.Balance, err = e.Balance(ctx, id); err != nil {
		return nil, notFoundAsNoCard(err)
	}
	if _, page.Rewards, err = e.Rewards(ctx, id); err != nil {
		return nil, notFoundAsNoCard(err)
	}
	coupons, err := e.MemberCoupons(ctx, id)
	if err != nil {
		return nil, notFoundAsNoCard(err)
	}
	for _, c := range coupons {
		if c.Status == CouponIssued {
			page.Coupons = append(page.Coupons, c)
		}
	}
	prog, _ := e.Program()
	page.Program, page.Currency, page.Location = prog.Name, prog.Currency, prog.Location
	return page, nil
}

func notFoundAsNoCard(err error) error {
	if ErrorCode(err) == ENOTFOUND {
		return errNoCard
	}
	return err
}
