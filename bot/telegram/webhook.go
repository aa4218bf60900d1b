package telegram

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// maxUpdateBody bounds a webhook request body; real updates are a few KiB.
const maxUpdateBody = 1 << 20

// WebhookState keeps a fingerprint of the last webhook registration, so
// that a replica starting finds the webhook already right and leaves it
// alone: Telegram never shows the secret back, and without the fingerprint
// a new secret under the same URL would go unnoticed. bot/redisstore
// implements it.
type WebhookState interface {
	// WebhookFingerprint returns the stored fingerprint; "" when none.
	WebhookFingerprint(ctx context.Context) (string, error)
	SetWebhookFingerprint(ctx context.Context, fp string) error
}

// RegisterWebhook checks the token and points Telegram at WebhookURL with
// WebhookSecret, for the updates the bot answers. It reads getWebhookInfo
// first and logs what Telegram reports (updates waiting, the last delivery
// error); when the URL and update kinds are already those, and
// Options.Webhooks holds the fingerprint of this URL and secret, it does
// not set the webhook again, so ten replicas starting do not re-register
// ten times. Without Webhooks every call sets it (setWebhook is
// idempotent).
func (a *Adapter) RegisterWebhook(ctx context.Context) error {
	if a.opts.WebhookURL == "" {
		return errors.New("register webhook: no webhook URL")
	}
	if err := a.identify(ctx); err != nil {
		return err
	}
	fp := a.webhookFingerprint()
	info, err := a.webhookInfo(ctx)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("read webhook info; setting the webhook", "err", err)
	default:
		a.logWebhookInfo(info, a.opts.WebhookURL)
		if a.webhookCurrent(ctx, info, fp) {
			a.log.Info("webhook already registered with this URL and secret; not setting it again")
			return nil
		}
	}
	params := &tgbot.SetWebhookParams{
		URL:            a.opts.WebhookURL,
		SecretToken:    a.opts.WebhookSecret,
		AllowedUpdates: allowedUpdates,
	}
	err = a.call(ctx, "setWebhook", viaLibrary(func(ctx context.Context) error {
		_, err := a.tg.SetWebhook(ctx, params)
		return err
	}))
	if err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	a.log.Info("webhook registered")
	if st := a.opts.Webhooks; st != nil {
		if err := st.SetWebhookFingerprint(ctx, fp); err != nil {
			// Only costs a setWebhook at the next start.
			a.log.Warn("remember webhook fingerprint", "err", err)
		}
	}
	return nil
}

// webhookFingerprint identifies a registration: URL, secret and update
// kinds, keyed with the token, so that the stored value tells nothing
// about the secret to someone who reads the store but has no token.
func (a *Adapter) webhookFingerprint() string {
	mac := hmac.New(sha256.New, []byte("shebao webhook\x00"+a.token))
	mac.Write([]byte(a.opts.WebhookURL))
	mac.Write([]byte{0})
	mac.Write([]byte(a.opts.WebhookSecret))
	mac.Write([]byte{0})
	mac.Write([]byte(strings.Join(allowedUpdates, ",")))
	return "v1:" + hex.EncodeToString(mac.Sum(nil))
}

// webhookCurrent reports whether Telegram's webhook is the one this
// adapter would set: what getWebhookInfo shows (URL, update kinds, no
// certificate of someone else's) and, for the secret it cannot show, the
// stored fingerprint.
func (a *Adapter) webhookCurrent(ctx context.Context, info *models.WebhookInfo, fp string) bool {
	st := a.opts.Webhooks
	if st == nil || info.URL != a.opts.WebhookURL || info.HasCustomCertificate {
		return false
	}
	have := slices.Sorted(slices.Values(info.AllowedUpdates))
	want := slices.Sorted(slices.Values(allowedUpdates))
	if !slices.Equal(have, want) {
		return false
	}
	stored, err := st.WebhookFingerprint(ctx)
	if err != nil {
		a.log.Warn("read webhook fingerprint; setting the webhook", "err", err)
		return false
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(fp)) == 1
}

// webhookInfo calls getWebhookInfo.
func (a *Adapter) webhookInfo(ctx context.Context) (*models.WebhookInfo, error) {
	var info *models.WebhookInfo
	err := a.call(ctx, "getWebhookInfo", viaLibrary(func(ctx context.Context) error {
		var err error
		info, err = a.tg.GetWebhookInfo(ctx)
		return err
	}))
	if err != nil {
		return nil, fmt.Errorf("get webhook info: %w", err)
	}
	if info == nil {
		info = &models.WebhookInfo{}
	}
	return info, nil
}

// logWebhookInfo logs what getWebhookInfo reports at start: how many
// updates wait at Telegram, and its last error delivering to the webhook
// (at Warn, with when). want is the URL this replica uses, "" when it
// polls; the URL itself is not logged (it may carry a path secret).
func (a *Adapter) logWebhookInfo(info *models.WebhookInfo, want string) {
	attrs := []any{
		"pending_update_count", info.PendingUpdateCount,
		"webhook_set", info.URL != "",
	}
	if want != "" {
		attrs = append(attrs, "url_matches", info.URL == want)
	}
	if info.LastErrorMessage == "" {
		a.log.Info("telegram webhook info", attrs...)
		return
	}
	attrs = append(attrs, "last_error_message", info.LastErrorMessage)
	if info.LastErrorDate > 0 {
		attrs = append(attrs, "last_error_at", time.Unix(int64(info.LastErrorDate), 0).UTC())
	}
	a.log.Warn("telegram webhook info: delivery failed", attrs...)
}

// Drain makes the webhook handler refuse new updates with 503, so Telegram
// redelivers them (to another replica, or to this one after a restart).
// Updates already being handled finish; http.Server.Shutdown waits for them.
func (a *Adapter) Drain() { a.draining.Store(true) }

// WebhookHandler serves Telegram's webhook requests. It answers 200 only
// after the update was handled and its replies sent, so an update whose
// handling was cut short is delivered again.
func (a *Adapter) WebhookHandler() http.Handler {
	return http.HandlerFunc(a.serveWebhook)
}

func (a *Adapter) serveWebhook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
	if a.opts.WebhookSecret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.opts.WebhookSecret)) != 1 {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if a.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpdateBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "update too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if a.quiet(body) {
		a.count("unread", outcomeLimited)
		w.WriteHeader(http.StatusOK)
		return
	}
	var u models.Update
	if err := json.Unmarshal(body, &u); err != nil || u.ID == 0 {
		id, hasID := updateID(body)
		if err == nil || (json.Valid(body) && !hasID) {
			// JSON, but no update: nothing Telegram sends.
			http.Error(w, "bad update", http.StatusBadRequest)
			return
		}
		// The sender knows the secret, so this is Telegram's: any answer
		// but 200 makes it deliver the update again, forever, and hold
		// back the updates behind it.
		a.log.Warn("undecodable update", "update_id", id, "bytes", len(body), "err", err)
		a.count("undecodable", outcomeIgnored)
		w.WriteHeader(http.StatusOK)
		return
	}
	if a.process(r.Context(), &u) == outcomeAborted {
		http.Error(w, "not handled", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}
