// Package telegram connects the conversation engine to the Telegram Bot API.
// It receives updates (long polling or webhook), turns them into
// bot.Message values, hands them to a Handler one chat at a time and sends
// the bot.Reply values back. It is the only importer of
// github.com/go-telegram/bot; no Telegram type crosses its boundary.
package telegram

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"github.com/shebao/shebao/bot"
	"github.com/shebao/shebao/bot/keylock"
)

// DefaultAPIURL is the Bot API server used when Options.APIURL is empty.
const DefaultAPIURL = "https://api.telegram.org"

// ErrBlocked is returned by Send when the user blocked the bot (HTTP 403).
var ErrBlocked = fmt.Errorf("chat blocked the bot: %w", bot.ErrGone)

// Options configure an Adapter. Token and Handler are required.
type Options struct {
	Token string
	// APIURL is the Bot API server (TELEGRAM_API_URL); DefaultAPIURL when empty.
	APIURL string
	// WebhookURL and WebhookSecret are used by RegisterWebhook and the
	// handler from WebhookHandler. A webhook needs a secret.
	WebhookURL    string
	WebhookSecret string
	// Workers bounds how many chats are handled at the same time while
	// polling; 64 when zero. A chat is with one worker at a time and the
	// chats with work take turns, so a slow answer (an LLM call) holds up
	// only its own chat; under load the workers' Redis calls share round
	// trips (BENCHMARKS.md).
	Workers int
	// DrainTimeout bounds how long updates already received are still
	// handled after the context of RunPolling is cancelled; 10 s when zero.
	DrainTimeout time.Duration

	Handler Handler
	// Limit is the per-user rate limit (bot.Limit), asked about every
	// update the bot would answer before it is queued. Nil: no limit.
	Limit       Limit
	Coordinator Coordinator // nil: no cross-replica dedupe
	Blocklist   Blocklist   // nil: blocked chats are not remembered
	// Handoff lets polling confirm updates as soon as they are held,
	// instead of once handled (see RunPolling). Nil: not used.
	Handoff Handoff
	// Webhooks remembers what the webhook was registered with, so that
	// RegisterWebhook skips setWebhook when nothing would change. Nil:
	// every RegisterWebhook sets it.
	Webhooks WebhookState
	Metrics  Metrics // nil: no metrics
	// Budget is the send budget shared by the replicas, SendLimits what
	// it allows (budget.go). Nil Budget: this process paces alone.
	Budget        SendBudget
	SendLimits    SendLimits
	BudgetMetrics BudgetMetrics // nil: no metrics
	Logger        *slog.Logger
	// HTTPClient talks to the Bot API. Nil means a client whose transport
	// keeps up to 100 idle connections to the API host: the standard
	// library default of 2 leaves thousands of sockets in TIME_WAIT under
	// load. Requests are bounded by contexts, so its Timeout should be zero
	// or longer than the long-poll timeout (50 s).
	HTTPClient *http.Client
	// Sleep waits d or until ctx is done (retry_after, the getUpdates
	// backoff). Nil means a timer; tests make it instant. The backoff of
	// failing calls runs on timers (see apiGate).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock stamped on messages; time.Now when nil.
	Now func() time.Time
}

// Metrics receives counters; implementations must be safe for concurrent
// use. Kinds: text, command, callback, contact, other (non-text message),
// ignored, undecodable (a webhook body that is no update), unread (dropped
// by the rate limit before it was decoded), member (the bot's own
// membership of a chat changed). Outcomes:
// handled, duplicate, ignored, blocked, error, aborted, limited (skipped
// by the rate limit), overflow (dropped: its chat had too many waiting);
// for member: blocked, unblocked, added (to a group), removed (from one).
type Metrics interface {
	Update(kind, outcome string)
	// APIError counts a failed Bot API call; code is the HTTP status or 0
	// for a network error or timeout.
	APIError(method string, code int)
	// APICall observes how long one attempt of a Bot API call took,
	// answered or not (getUpdates, whose long poll waits on purpose, is
	// left out).
	APICall(method string, d time.Duration)
}

// Command is one entry of the bot's command menu.
type Command struct {
	Name        string // without the leading slash
	Description string
}

// Adapter is the Telegram transport of the engine.
type Adapter struct {
	tg       *tgbot.Bot
	http     *http.Client
	token    string
	apiURL   string
	opts     Options
	log      *slog.Logger
	sleep    func(ctx context.Context, d time.Duration) error
	now      func() time.Time
	locks    keylock.Locks[int64] // one chat's updates at a time in this process
	sealer   *sealer              // encrypts updates held in the Handoff
	username atomic.Pointer[string]
	botID    atomic.Int64
	// lastSched is the queue of the latest RunPolling (for tests).
	lastSched atomic.Pointer[sched]
	draining  atomic.Bool
	gate      *apiGate // shared by every Bot API call of the adapter
	budget    *budget  // what every message sent or edited waits for

	// Tunables kept unexported; tests shorten them.
	pollTimeout    time.Duration // long-poll wait asked of getUpdates
	pinnedInterval time.Duration // re-fetch interval while an old update pins the offset
	callTimeout    time.Duration // one Bot API call
	retryFor       time.Duration // how long a failing Bot API call is retried
	maxAttempts    int           // per Bot API call; 0: only retryFor bounds them
	firstBackoff   time.Duration
	maxBackoff     time.Duration
	confirmTimeout time.Duration // final getUpdates after a drain
	actionTimeout  time.Duration // sendChatAction, answerCallbackQuery
	typingDelay    time.Duration // handler time after which "typing…" is shown
	pinnedGap      time.Duration // least time between fetches while the offset is pinned
	releaseEvery   time.Duration // how often handled updates are released from the Handoff
}

// New builds an Adapter. It makes no network calls: the token is checked by
// RunPolling and RegisterWebhook.
func New(opts Options) (*Adapter, error) {
	var problems []string
	if strings.TrimSpace(opts.Token) == "" {
		problems = append(problems, "token is empty")
	}
	if opts.Handler == nil {
		problems = append(problems, "handler is nil")
	}
	if opts.WebhookURL != "" && opts.WebhookSecret == "" {
		problems = append(problems, "webhook URL set without a secret")
	}
	if opts.Workers < 0 {
		problems = append(problems, "workers is negative")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("telegram options: %s", strings.Join(problems, "; "))
	}
	if opts.APIURL == "" {
		opts.APIURL = DefaultAPIURL
	}
	if opts.Workers == 0 {
		opts.Workers = 64
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultHTTPClient()
	}
	a := &Adapter{
		http:           opts.HTTPClient,
		token:          opts.Token,
		apiURL:         strings.TrimRight(opts.APIURL, "/"),
		opts:           opts,
		log:            opts.Logger,
		sleep:          opts.Sleep,
		now:            opts.Now,
		pollTimeout:    50 * time.Second,
		pinnedInterval: 500 * time.Millisecond,
		callTimeout:    20 * time.Second,
		retryFor:       time.Minute,
		firstBackoff:   500 * time.Millisecond,
		maxBackoff:     5 * time.Second,
		confirmTimeout: 5 * time.Second,
		actionTimeout:  3 * time.Second,
		typingDelay:    300 * time.Millisecond,
		pinnedGap:      10 * time.Millisecond,
		releaseEvery:   100 * time.Millisecond,
		gate:           newGate(),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.budget = newBudget(opts, a.log)
	if a.sleep == nil {
		a.sleep = sleepCtx
	}
	if a.now == nil {
		a.now = time.Now
	}
	tg, err := tgbot.New(opts.Token,
		tgbot.WithServerURL(a.apiURL),
		tgbot.WithSkipGetMe(),
		tgbot.WithHTTPClient(a.pollTimeout, statusClient{opts.HTTPClient}),
		tgbot.WithErrorsHandler(func(err error) { a.log.Warn("telegram library", "err", err) }),
	)
	if err != nil {
		return nil, fmt.Errorf("create telegram client: %w", err)
	}
	a.tg = tg
	if a.sealer, err = newSealer(opts.Token); err != nil {
		return nil, err
	}
	return a, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// identify calls getMe: it checks the token and learns the bot's username,
// which tells "/cmd@ThisBot" from "/cmd@OtherBot" in groups.
func (a *Adapter) identify(ctx context.Context) error {
	var me *models.User
	err := a.call(ctx, "getMe", viaLibrary(func(ctx context.Context) error {
		var err error
		me, err = a.tg.GetMe(ctx)
		return err
	}))
	if err != nil {
		return fmt.Errorf("check bot token: %w", err)
	}
	name := me.Username
	a.username.Store(&name)
	a.botID.Store(me.ID)
	return nil
}

// StartURL opens a private chat with the bot when a start payload is
// appended ("https://t.me/ShebaoBot?start="); "" until the bot's name is
// known (Run asks for it first).
func (a *Adapter) StartURL() string {
	if me := a.username.Load(); me != nil && *me != "" {
		return "https://t.me/" + *me + "?start="
	}
	return ""
}

// SetCommands publishes the command menu of private chats: zh for Chinese
// clients and as the default, en for English clients. Group chats get no
// menu: its commands are personal and there only point to a private chat,
// so the menus an earlier release set for every chat (the default scope)
// are deleted. What Telegram already has is not written again, so that
// many replicas starting at once stay clear of its rate limits. It stops
// when Telegram does not answer and returns every failure; none matters
// beyond the menu.
func (a *Adapter) SetCommands(ctx context.Context, zh, en []Command) error {
	private := &models.BotCommandScopeAllPrivateChats{}
	var steps []profileStep
	for _, set := range []struct {
		lang string
		cmds []Command
	}{{"", zh}, {"zh", zh}, {"en", en}} {
		want := botCommands(set.cmds)
		steps = append(steps, profileStep{
			what: fmt.Sprintf("private-chat commands for language %q", set.lang),
			same: func(ctx context.Context) (bool, error) {
				have, err := a.commands(ctx, private, set.lang)
				return slices.Equal(have, want), err
			},
			set: func(ctx context.Context) error {
				_, err := a.tg.SetMyCommands(ctx, &tgbot.SetMyCommandsParams{Commands: want, Scope: private, LanguageCode: set.lang})
				return err
			},
			method: "setMyCommands",
		})
	}
	for _, lang := range []string{"", "zh", "en"} {
		steps = append(steps, profileStep{
			what: fmt.Sprintf("default commands for language %q", lang),
			same: func(ctx context.Context) (bool, error) {
				have, err := a.commands(ctx, &models.BotCommandScopeDefault{}, lang)
				return len(have) == 0, err
			},
			set: func(ctx context.Context) error {
				_, err := a.tg.DeleteMyCommands(ctx, &tgbot.DeleteMyCommandsParams{Scope: &models.BotCommandScopeDefault{}, LanguageCode: lang})
				return err
			},
			method: "deleteMyCommands",
		})
	}
	return a.ensureProfile(ctx, steps)
}

// SetDescriptions publishes what Telegram shows before anyone writes to
// the bot: the description (on the empty chat, above the Start button)
// and the short description (on the bot's profile and in shared links),
// zh for Chinese clients and as the default, en for English clients. Like
// SetCommands it writes only what differs from what Telegram has.
func (a *Adapter) SetDescriptions(ctx context.Context, zh, en bot.Description) error {
	var steps []profileStep
	for _, set := range []struct {
		lang string
		d    bot.Description
	}{{"", zh}, {"zh", zh}, {"en", en}} {
		steps = append(steps, profileStep{
			what: fmt.Sprintf("description for language %q", set.lang),
			same: func(ctx context.Context) (bool, error) {
				var have models.BotDescription
				err := a.call(ctx, "getMyDescription", viaLibrary(func(ctx context.Context) error {
					var err error
					have, err = a.tg.GetMyDescription(ctx, &tgbot.GetMyDescriptionParams{LanguageCode: set.lang})
					return err
				}))
				return have.Description == set.d.Text, err
			},
			set: func(ctx context.Context) error {
				_, err := a.tg.SetMyDescription(ctx, &tgbot.SetMyDescriptionParams{Description: set.d.Text, LanguageCode: set.lang})
				return err
			},
			method: "setMyDescription",
		}, profileStep{
			what: fmt.Sprintf("short description for language %q", set.lang),
			same: func(ctx context.Context) (bool, error) {
				var have models.BotShortDescription
				err := a.call(ctx, "getMyShortDescription", viaLibrary(func(ctx context.Context) error {
					var err error
					have, err = a.tg.GetMyShortDescription(ctx, &tgbot.GetMyShortDescriptionParams{LanguageCode: set.lang})
					return err
				}))
				return have.ShortDescription == set.d.Short, err
			},
			set: func(ctx context.Context) error {
				_, err := a.tg.SetMyShortDescription(ctx, &tgbot.SetMyShortDescriptionParams{ShortDescription: set.d.Short, LanguageCode: set.lang})
				return err
			},
			method: "setMyShortDescription",
		})
	}
	return a.ensureProfile(ctx, steps)
}

// profileStep is one setting of the bot's profile (a command menu, a
// description): same reads what Telegram has and compares, set writes it
// through the library under method's name.
type profileStep struct {
	what   string
	same   func(ctx context.Context) (bool, error)
	set    func(ctx context.Context) error
	method string
}

// ensureProfile runs the steps in order, writing each setting whose read
// shows it differs, or could not be read because Telegram refused (an API
// server without the read method). It goes on past refusals and stops at
// the first failure that means Telegram is not answering: the next start
// tries again.
func (a *Adapter) ensureProfile(ctx context.Context, steps []profileStep) error {
	var errs []error
	for _, st := range steps {
		same, err := st.same(ctx)
		switch {
		case err == nil && same:
			continue
		case err != nil && !refused(err):
			return errors.Join(append(errs, fmt.Errorf("read %s: %w", st.what, err))...)
		}
		if err := a.call(ctx, st.method, viaLibrary(st.set)); err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", st.what, err))
			if !refused(err) {
				return errors.Join(errs...)
			}
			continue
		}
		a.log.Info("bot profile updated", "setting", st.what)
	}
	return errors.Join(errs...)
}

// commands reads the command menu of a scope and language.
func (a *Adapter) commands(ctx context.Context, scope models.BotCommandScope, lang string) ([]models.BotCommand, error) {
	var have []models.BotCommand
	err := a.call(ctx, "getMyCommands", viaLibrary(func(ctx context.Context) error {
		var err error
		have, err = a.tg.GetMyCommands(ctx, &tgbot.GetMyCommandsParams{Scope: scope, LanguageCode: lang})
		return err
	}))
	return have, err
}

func botCommands(cmds []Command) []models.BotCommand {
	out := make([]models.BotCommand, 0, len(cmds))
	for _, c := range cmds {
		out = append(out, models.BotCommand{Command: strings.TrimPrefix(c.Name, "/"), Description: c.Description})
	}
	return out
}

// outcome of handling one update. aborted means the context ended before
// the update was fully handled: it must stay unconfirmed so Telegram
// delivers it again.
type outcome string

const (
	outcomeHandled   outcome = "handled"
	outcomeDuplicate outcome = "duplicate"
	outcomeIgnored   outcome = "ignored"
	outcomeBlocked   outcome = "blocked"
	outcomeError     outcome = "error"
	outcomeAborted   outcome = "aborted"
	outcomeLimited   outcome = "limited"
	outcomeOverflow  outcome = "overflow"
	// The bot's membership of a chat (my_chat_member).
	outcomeUnblocked outcome = "unblocked"
	outcomeAdded     outcome = "added"
	outcomeRemoved   outcome = "removed"
)

// incoming is an update reduced to what the engine needs.
type incoming struct {
	updateID   int64
	chatID     int64  // the Bot API's chat id; msg.Chat is its identity
	kind       string // see Metrics
	msg        bot.Message
	callbackID string // to answer, even for duplicates
	pressed    int    // the message whose button was pressed; 0 when unknown
	typing     bool   // the handler may be slow: show "typing" first
}

// convert turns an update into an incoming message; ok is false for updates
// the bot does not answer (edits, channel posts, chatter in groups that is
// not addressed to the bot).
func (a *Adapter) convert(u *models.Update) (in incoming, ok bool) {
	in.updateID = u.ID
	in.msg.Time = a.now()
	in.msg.PrivateChatURL = a.StartURL()
	switch {
	case u.CallbackQuery != nil:
		q := u.CallbackQuery
		in.kind = "callback"
		in.callbackID = q.ID
		in.msg.User = tgID(q.From.ID)
		in.msg.LanguageCode = q.From.LanguageCode
		in.msg.Callback = q.Data
		in.chatID = chatOf(u)
		in.msg.Chat = tgID(in.chatID)
		in.msg.ChatType = bot.ChatPrivate // inline buttons are answered privately
		switch {
		case q.Message.Message != nil:
			in.msg.ChatType = chatType(q.Message.Message.Chat.Type)
			in.pressed = q.Message.Message.ID
		case q.Message.InaccessibleMessage != nil && q.Message.InaccessibleMessage.Chat.ID != 0:
			in.msg.ChatType = chatType(q.Message.InaccessibleMessage.Chat.Type)
		}
		return in, in.chatID != 0
	case u.Message != nil:
		m := u.Message
		in.chatID = m.Chat.ID
		in.msg.Chat = tgID(m.Chat.ID)
		in.msg.ChatType = chatType(m.Chat.Type)
		if m.From != nil {
			in.msg.User = tgID(m.From.ID)
			in.msg.LanguageCode = m.From.LanguageCode
		}
		private := m.Chat.Type == models.ChatTypePrivate
		switch {
		case m.Text != "" && strings.HasPrefix(m.Text, "/"):
			text, mine := a.normalizeCommand(m.Text, private)
			if !mine {
				in.kind = "ignored"
				return in, false
			}
			in.kind = "command"
			in.msg.Text = text
		case !private:
			// In a group only what is addressed to the bot: a mention,
			// or a reply to one of its messages.
			text, addressed := a.addressed(m)
			if !addressed {
				in.kind = "ignored"
				return in, false
			}
			in.kind = "text"
			in.msg.Text = text
			in.typing = true
		case m.Contact != nil:
			in.kind = "contact"
			in.msg.Contact = &bot.Contact{Phone: m.Contact.PhoneNumber}
			if m.Contact.UserID != 0 {
				in.msg.Contact.User = tgID(m.Contact.UserID)
			}
		case m.Text != "":
			in.kind = "text"
			in.msg.Text = m.Text
			in.typing = true
		default:
			in.kind = "other" // the engine answers that it only reads text
		}
		return in, true
	default:
		in.kind = "ignored"
		return in, false
	}
}

// chatType maps Telegram's chat type to the engine's; an unknown one is a
// group (the engine then shows nothing personal).
func chatType(t models.ChatType) bot.ChatType {
	switch t {
	case models.ChatTypePrivate:
		return bot.ChatPrivate
	case models.ChatTypeSupergroup:
		return bot.ChatSupergroup
	case models.ChatTypeChannel:
		return bot.ChatChannel
	}
	return bot.ChatGroup
}

// addressed reports whether a group message is for the bot, and returns
// its text without the mention: "@ThisBot question", or a reply to one of
// the bot's messages. Only text counts.
func (a *Adapter) addressed(m *models.Message) (string, bool) {
	if m.Text == "" {
		return "", false
	}
	if r := m.ReplyToMessage; r != nil && r.From != nil && r.From.IsBot && r.From.ID != 0 && r.From.ID == a.botID.Load() {
		return m.Text, true
	}
	me := a.username.Load()
	if me == nil || *me == "" {
		return "", false
	}
	mention := "@" + *me
	i := strings.Index(strings.ToLower(m.Text), strings.ToLower(mention))
	if i < 0 {
		return "", false
	}
	return strings.TrimSpace(m.Text[:i] + m.Text[i+len(mention):]), true
}

// tgID is the identity of a Telegram user or chat id: "tg:42".
func tgID(id int64) string { return bot.ID(bot.ChannelTelegram, strconv.FormatInt(id, 10)) }

// chatIDOf is the Bot API chat id of a Telegram identity.
func chatIDOf(chat string) (int64, error) {
	if bot.ChannelOf(chat) != bot.ChannelTelegram {
		return 0, fmt.Errorf("%q is not a Telegram chat", bot.ChannelOf(chat))
	}
	return strconv.ParseInt(bot.Local(chat), 10, 64)
}

// chatOf is the chat an update is answered in. Polling also picks the
// update's worker by it, so one chat's updates are handled in order: the
// two must agree.
func chatOf(u *models.Update) int64 {
	switch {
	case u.CallbackQuery != nil:
		q := u.CallbackQuery
		switch {
		case q.Message.Message != nil:
			return q.Message.Message.Chat.ID
		case q.Message.InaccessibleMessage != nil && q.Message.InaccessibleMessage.Chat.ID != 0:
			return q.Message.InaccessibleMessage.Chat.ID
		}
		// Inline-mode buttons have no chat; answer the user privately.
		return q.From.ID
	case u.Message != nil:
		return u.Message.Chat.ID
	}
	return 0
}

// normalizeCommand strips "@BotName" from the leading command so the engine
// sees "/cmd args". It works on the text, not entity offsets, which count
// UTF-16 units. mine is false for a group command addressed to another bot.
func (a *Adapter) normalizeCommand(text string, private bool) (string, bool) {
	end := strings.IndexAny(text, " \n\t")
	if end < 0 {
		end = len(text)
	}
	cmd, rest := text[:end], text[end:]
	at := strings.IndexByte(cmd, '@')
	if at < 0 {
		return text, true
	}
	target := cmd[at+1:]
	if me := a.username.Load(); me != nil && *me != "" && !private && !strings.EqualFold(target, *me) {
		return "", false
	}
	return cmd[:at] + rest, true
}

// process handles one webhook update end to end: the rate limit, dedupe,
// per-chat serialisation, the handler and the replies. ctx bounds the
// whole handling.
func (a *Adapter) process(ctx context.Context, u *models.Update) outcome {
	if u.MyChatMember != nil {
		out := a.chatMember(ctx, u.MyChatMember)
		a.count("member", out)
		return out
	}
	in, ok := a.convert(u)
	if !ok {
		a.count(in.kind, outcomeIgnored)
		return outcomeIgnored
	}
	var limit func() bot.Verdict
	if a.opts.Limit != nil {
		// Asked while the chat is claimed: the two Redis calls then
		// share a round trip instead of adding one to every update.
		verdict := make(chan bot.Verdict, 1)
		go func() { verdict <- a.opts.Limit.Check(ctx, []string{limitKey(in.msg)}, a.now())[0] }()
		limit = func() bot.Verdict { return <-verdict }
	}
	out := a.processMessage(ctx, in, limit)
	a.count(in.kind, out)
	return out
}

// processMessage handles one converted update: the claim (dedupe and
// per-chat order), the handler, the replies. limit, when not nil, returns
// the rate limit's verdict, decided meanwhile; it is awaited after the
// claim and before the handler.
func (a *Adapter) processMessage(ctx context.Context, in incoming, limit func() bot.Verdict) outcome {
	chatID := in.chatID
	var done func(bool)
	defer func() {
		if limit != nil {
			limit() // not needed (a duplicate, an abort), but let it finish
		}
	}()
	if c := a.opts.Coordinator; c != nil {
		d, dup, err := c.Begin(ctx, in.msg.Chat, in.updateID)
		switch {
		case ctx.Err() != nil:
			return outcomeAborted
		case err != nil:
			// Answers must keep flowing when the coordinator (Redis) is
			// down; the cost is a possible double answer on redelivery.
			a.log.Warn("coordinator unavailable; handling without dedupe", "update_id", in.updateID, "err", err)
		case dup:
			a.answerCallback(ctx, in.callbackID)
			return outcomeDuplicate
		default:
			done = d
		}
	}
	if limit != nil {
		v := limit()
		limit = nil
		switch v {
		case bot.Skip:
			if done != nil {
				done(false) // not answered: a redelivery is asked about again
			}
			return outcomeLimited
		case bot.Notify:
			in.msg.Limited = true
		}
	}
	// Begin already orders one chat's updates across replicas; the local
	// lock keeps that order when the coordinator is absent or down.
	unlock, err := a.locks.Lock(ctx, chatID)
	if err != nil {
		if done != nil {
			done(false)
		}
		return outcomeAborted
	}
	out := a.handle(ctx, in)
	unlock()
	if done != nil {
		done(out != outcomeAborted)
	}
	return out
}

func (a *Adapter) handle(ctx context.Context, in incoming) outcome {
	chatID := in.chatID
	if in.callbackID != "" {
		a.answerCallback(ctx, in.callbackID)
	}
	stopTyping := func() {}
	if in.typing {
		stopTyping = a.typingAfter(ctx, chatID, a.typingDelay)
	}
	replies, herr := a.opts.Handler.Handle(ctx, in.msg)
	stopTyping()
	if ctx.Err() != nil {
		return outcomeAborted
	}
	if herr != nil {
		// The replies still hold a polite message for the user (the
		// engine's contract); the detail is for the operator.
		a.log.Warn("handler failed", "kind", in.kind, "update_id", in.updateID, "err", herr)
	}
	err := a.send(ctx, chatID, in.pressed, replies)
	switch {
	case err == nil && herr != nil:
		return outcomeError
	case err == nil:
		return outcomeHandled
	case errors.Is(err, ErrBlocked):
		return outcomeBlocked
	case ctx.Err() != nil:
		return outcomeAborted
	default:
		a.log.Warn("send replies", "update_id", in.updateID, "err", err)
		return outcomeError
	}
}

// answerCallback stops the client's button spinner. One try: a late or
// failed answer only leaves the spinner running a little longer.
func (a *Adapter) answerCallback(ctx context.Context, id string) {
	if id == "" || a.gate.isOpen() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, a.actionTimeout)
	defer cancel()
	var status int
	_, err := a.tg.AnswerCallbackQuery(withStatus(ctx, &status), &tgbot.AnswerCallbackQueryParams{CallbackQueryID: id})
	if err != nil {
		a.apiError("answerCallbackQuery", status, err)
		a.log.Debug("answer callback query", "err", err)
	}
}

// typingAfter shows "typing…" if the handler is still working after d.
// Most answers come from memory in microseconds and need no indicator (an
// unconditional sendChatAction would double the Bot API calls per
// question); an LLM phrasing can take seconds. stop waits for a typing
// call in flight, so the indicator never follows the reply. d <= 0 sends
// it at once.
func (a *Adapter) typingAfter(ctx context.Context, chatID int64, d time.Duration) (stop func()) {
	if d <= 0 {
		a.sendTyping(ctx, chatID)
		return func() {}
	}
	cancel := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			a.sendTyping(ctx, chatID)
		case <-cancel:
		case <-ctx.Done():
		}
	}()
	return func() {
		close(cancel)
		<-finished
	}
}

// sendTyping shows "typing…" while the handler works. Its failure does not
// matter, so it is tried once with a short timeout.
func (a *Adapter) sendTyping(ctx context.Context, chatID int64) {
	if a.gate.isOpen() {
		return // the Bot API is failing: the reply matters, the indicator does not
	}
	ctx, cancel := context.WithTimeout(ctx, a.actionTimeout)
	defer cancel()
	var status int
	_, err := a.tg.SendChatAction(withStatus(ctx, &status), &tgbot.SendChatActionParams{ChatID: chatID, Action: models.ChatActionTyping})
	if err != nil {
		a.apiError("sendChatAction", status, err)
		a.log.Debug("send chat action", "err", err)
	}
}

func (a *Adapter) count(kind string, out outcome) {
	if a.opts.Metrics != nil {
		a.opts.Metrics.Update(kind, string(out))
	}
}
