package faq

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/sony/gobreaker/v2"
)

const defaultLLMTimeout = 15 * time.Second

// reason is why an LLM phrasing was not used.
type reason int

const (
	reasonHTTP reason = iota
	reasonTimeout
	reasonInvalidJSON
	reasonBadCitation
	reasonBadQuote
	reasonEmpty
	reasonWrongLanguage
	reasonBadNumber
	reasonBusy        // too many calls in flight, overall or for this user
	reasonBreakerOpen // the endpoint failed repeatedly; calls are paused
	numReasons
)

func (r reason) String() string {
	return [...]string{"http", "timeout", "invalid_json", "bad_citation", "bad_quote", "empty", "wrong_language", "bad_number",
		"busy", "breaker_open"}[r]
}

// Defaults for LLMConfig's limits.
const (
	defaultLLMConcurrency = 8
	// A hung endpoint costs this many timeouts in a row, then calls pause
	// for breakerPause: one timeout a question would stall every answer.
	breakerTrips = 3
	breakerPause = 30 * time.Second
)

type llm struct {
	client  *openai.Client
	model   string
	timeout time.Duration
	// slots bounds the calls in flight; a question that finds none gets
	// the retrieval answer at once rather than queueing behind a slow
	// endpoint.
	slots chan struct{}
	// users holds the users with a call in flight: one at a time each, so
	// one person sending many questions cannot take every slot.
	users   sync.Map // string → struct{}
	breaker *gobreaker.CircuitBreaker[openai.ChatCompletionResponse]
	observe func(call string, d time.Duration, err error) // nil: not timed
}

// complete is one chat completion call, timed for LLMConfig.Observe.
func (l *llm) complete(ctx context.Context, call string, req openai.ChatCompletionRequest) (openai.ChatCompletionResponse, error) {
	began := time.Now()
	resp, err := l.client.CreateChatCompletion(ctx, req)
	if l.observe != nil {
		l.observe(call, time.Since(began), err)
	}
	return resp, err
}

func newLLM(c LLMConfig) *llm {
	cfg := openai.DefaultConfig(c.APIKey)
	if c.BaseURL != "" {
		cfg.BaseURL = strings.TrimRight(c.BaseURL, "/")
	}
	// cfg.HTTPClient is an interface: a nil *http.Client in it would not
	// compare equal to nil, so pick the client before assigning.
	hc := c.HTTPClient
	if hc == nil {
		// The context carries the per-call deadline; these bound the
		// phases a context cannot see into a stuck connection pool.
		hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
		}}
	}
	cfg.HTTPClient = hc
	t := c.Timeout
	if t <= 0 {
		t = defaultLLMTimeout
	}
	n := c.Concurrency
	if n <= 0 {
		n = defaultLLMConcurrency
	}
	return &llm{
		client: openai.NewClientWithConfig(cfg), model: c.Model, timeout: t, slots: make(chan struct{}, n), observe: c.Observe,
		breaker: gobreaker.NewCircuitBreaker[openai.ChatCompletionResponse](gobreaker.Settings{
			Name:        "llm",
			MaxRequests: 1, // one probe when the pause ends
			Timeout:     breakerPause,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerTrips },
			// A question the user gave up on says nothing about the
			// endpoint.
			IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		}),
	}
}

// Before a question leaves for the LLM, everything that could identify a
// person is replaced: ID numbers and long digit runs however they are
// spaced or dotted (phones "139.0000.0011", "+86 139 0000 0011", bank
// cards, which pass the Luhn check but are caught by length anyway), and
// e-mail addresses. Health details stay: they are the question; the README
// says so and recommends a local model where that matters.
var (
	// digitRun is six or more digits with up to two separators between them
	// (space, dash, dot, slash, underscore, or a full-width form), and an
	// ID number's final X.
	digitRun = regexp.MustCompile(`(?:\+\s?86[\s\-.]*)?[0-9０-９](?:[\s\-.\/_·－．　]{0,2}[0-9０-９]){5,}(?:[\s\-]?[xXｘＸ])?`)
	emailRE  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+\s?(?:@|＠|\(at\)|\[at\])\s?[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
)

// redact removes ID numbers, phone numbers, bank-card and account numbers
// and e-mail addresses before a question leaves the process.
func redact(s string) string {
	s = emailRE.ReplaceAllString(s, "[redacted]")
	return digitRun.ReplaceAllString(s, "[redacted]")
}

// rerankTimeout bounds the choice among candidates: it runs before the
// answer exists, so it must be quick or skipped.
const rerankTimeout = 4 * time.Second

var firstNumber = regexp.MustCompile(`[0-9]+`)

// rerank asks which of the candidate questions the user's question asks,
// and returns its index. ok is false on any failure, a busy or open
// breaker, or an answer of "none" or out of range.
func (l *llm) rerank(ctx context.Context, question string, candidates []string) (int, bool) {
	select {
	case l.slots <- struct{}{}:
		defer func() { <-l.slots }()
	default:
		return 0, false
	}
	var b strings.Builder
	b.WriteString("User question:\n" + redact(question) + "\n\nCandidate questions:\n")
	for i, c := range candidates {
		b.WriteString(strconv.Itoa(i+1) + ". " + c + "\n")
	}
	b.WriteString("\nWhich candidate asks the same thing as the user question? Reply with its number only, or 0 if none does.")
	ctx, cancel := context.WithTimeout(ctx, min(rerankTimeout, l.timeout))
	defer cancel()
	resp, err := l.breaker.Execute(func() (openai.ChatCompletionResponse, error) {
		return l.complete(ctx, "rerank", openai.ChatCompletionRequest{
			Model: l.model,
			Messages: []openai.ChatCompletionMessage{
				{Role: openai.ChatMessageRoleSystem, Content: "You match a citizen's question about Chinese social and medical insurance to the closest of a few curated questions. Answer with a single number."},
				{Role: openai.ChatMessageRoleUser, Content: b.String()},
			},
			Temperature: 0,
			MaxTokens:   4,
		})
	})
	if err != nil || len(resp.Choices) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(firstNumber.FindString(resp.Choices[0].Message.Content))
	if err != nil || n < 1 || n > len(candidates) {
		return 0, false
	}
	return n - 1, true
}

type llmReply struct {
	Answer    string     `json:"answer"`
	Citations []Citation `json:"citations"`
	Quotes    []string   `json:"quotes"`
}

const systemPromptZH = `你是一个社保、医保问答助手的措辞助手。只能依据下面给出的“参考答案”和“法条原文”回答，不得添加其中没有的事实、数字或法条。` +
	`用简体中文、简洁友好地回答用户的问题。只输出一个 JSON 对象，不要输出其他内容：` +
	`{"answer": "回答正文（纯文本，不要写法条名称和条号标签）", "citations": [{"law": "法律简称", "article": 条号数字}], "quotes": ["从法条原文逐字摘抄的句子"]}。` +
	`citations 只能从给出的法条中选；quotes 必须与法条原文逐字一致，没有把握就留空数组。`

const systemPromptEN = `You phrase answers for a Chinese social and medical insurance Q&A assistant. Use only the "reference answer" and ` +
	`"article texts" given below; add no fact, number or article that is not in them. Answer the user's question in plain, friendly ` +
	`English. Output exactly one JSON object and nothing else: ` +
	`{"answer": "answer text (plain text, no citation labels)", "citations": [{"law": "law short name as given", "article": number}], ` +
	`"quotes": ["text copied verbatim from an article text"]}. ` +
	`Cite only articles given below; every quote must be copied exactly from an article text, or leave quotes empty.`

func (l *llm) prompt(question string, lang Lang, v Version, arts []*Article) []openai.ChatCompletionMessage {
	sys := systemPromptZH
	if lang == EN {
		sys = systemPromptEN
	}
	var b strings.Builder
	b.WriteString("Reference answer / 参考答案:\n")
	b.WriteString(v.Answer(lang))
	b.WriteString("\n\nArticle texts / 法条原文:\n")
	for _, a := range arts {
		b.WriteString(`{"law": "` + a.Law + `", "article": ` + strconv.Itoa(a.Article) + "}\n")
		b.WriteString(a.Text)
		if a.English != "" {
			b.WriteString("\n(English rendering) " + a.English)
		}
		b.WriteString("\n\n")
	}
	b.WriteString("User question / 用户问题:\n")
	b.WriteString(redact(question))
	return []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: sys},
		{Role: openai.ChatMessageRoleUser, Content: b.String()},
	}
}

// phrase asks the LLM to word the retrieved answer and replaces ans.Text
// only if the reply passes validation. Failures are logged without any
// message text and counted.
func (f *FAQ) phrase(ctx context.Context, question, user string, lang Lang, entry string, v Version, ans *Answer) {
	arts := make([]*Article, 0, len(v.Citations))
	for _, c := range v.Citations {
		arts = append(arts, f.corpus.articles[c])
	}
	if user != "" {
		if _, busy := f.llm.users.LoadOrStore(user, struct{}{}); busy {
			f.fallback(reasonBusy, entry, nil)
			return
		}
		defer f.llm.users.Delete(user)
	}
	select {
	case f.llm.slots <- struct{}{}:
		defer func() { <-f.llm.slots }()
	default:
		f.fallback(reasonBusy, entry, nil)
		return
	}
	f.stats.llmCalls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, f.llm.timeout)
	defer cancel()
	resp, err := f.llm.breaker.Execute(func() (openai.ChatCompletionResponse, error) {
		return f.llm.complete(ctx, "phrase", openai.ChatCompletionRequest{
			Model:       f.llm.model,
			Messages:    f.llm.prompt(question, lang, v, arts),
			Temperature: 0.2,
		})
	})
	if err != nil {
		r := reasonHTTP
		switch {
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			r = reasonBreakerOpen
		case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
			r = reasonTimeout
		}
		f.fallback(r, entry, err)
		return
	}
	if len(resp.Choices) == 0 {
		f.fallback(reasonEmpty, entry, nil)
		return
	}
	cits, text, r, ok := f.corpus.laws.validate(resp.Choices[0].Message.Content, lang, v.Answer(lang), arts)
	if !ok {
		f.fallback(r, entry, nil)
		return
	}
	f.stats.llmAccepted.Add(1)
	ans.Text = text
	if len(cits) > 0 {
		ans.Citations = cits
	}
	ans.Phrased = true
}

func (f *FAQ) fallback(r reason, entry string, err error) {
	f.stats.fallbacks[r].Add(1)
	attrs := []any{"reason", r.String(), "entry", entry}
	if err != nil && r == reasonHTTP {
		// The client error names the URL and status, not the prompt.
		var apiErr *openai.APIError
		var reqErr *openai.RequestError
		switch {
		case errors.As(err, &apiErr):
			attrs = append(attrs, "status", apiErr.HTTPStatusCode)
		case errors.As(err, &reqErr):
			attrs = append(attrs, "status", reqErr.HTTPStatusCode)
		}
	}
	f.log.Warn("llm phrasing rejected, using retrieval answer", attrs...)
}

// validate checks an LLM reply against the reference answer ref (in
// lang) and the articles retrieval supplied. It returns the citations to
// show (a subset of the supplied ones) and the answer text.
func (reg *registry) validate(content string, lang Lang, ref string, arts []*Article) ([]Citation, string, reason, bool) {
	content = strings.TrimSpace(content)
	// Many servers wrap JSON in a Markdown fence despite the prompt.
	if strings.HasPrefix(content, "```") {
		content = strings.TrimPrefix(content, "```json")
		content = strings.TrimPrefix(content, "```")
		content = strings.TrimSuffix(strings.TrimSpace(content), "```")
	}
	var r llmReply
	dec := json.NewDecoder(strings.NewReader(content))
	if err := dec.Decode(&r); err != nil || dec.More() {
		return nil, "", reasonInvalidJSON, false
	}
	text := strings.TrimSpace(r.Answer)
	if text == "" {
		return nil, "", reasonEmpty, false
	}
	if !reg.inLang(text, lang, ref) {
		return nil, "", reasonWrongLanguage, false
	}
	allowed := map[Citation]*Article{}
	lawsSupplied := map[string]bool{}
	for _, a := range arts {
		allowed[a.Citation] = a
		lawsSupplied[a.Law] = true
	}
	var cits []Citation
	seen := map[Citation]bool{}
	for _, c := range r.Citations {
		if _, ok := allowed[c]; !ok {
			return nil, "", reasonBadCitation, false
		}
		if !seen[c] {
			seen[c] = true
			cits = append(cits, c)
		}
	}
	// An article named only in the prose is a citation too: it must be
	// one of those supplied, law and number. A bare "第四条" belongs to
	// the supplied law when there is only one.
	def := ""
	if len(lawsSupplied) == 1 {
		def = arts[0].Law
	}
	named, ok := reg.proseCitations(text, def)
	if !ok {
		return nil, "", reasonBadCitation, false
	}
	for _, c := range named {
		if _, ok := allowed[c]; !ok {
			return nil, "", reasonBadCitation, false
		}
	}
	for _, q := range r.Quotes {
		q = strings.TrimSpace(q)
		if q == "" {
			continue
		}
		found := false
		// A quote must come from an article the reply cites; with no
		// citations, from any supplied article.
		for c, a := range allowed {
			if len(cits) > 0 && !seen[c] {
				continue
			}
			if strings.Contains(a.Text, q) || (a.English != "" && strings.Contains(a.English, q)) {
				found = true
				break
			}
		}
		if !found {
			return nil, "", reasonBadQuote, false
		}
	}
	// Quotation marks in the prose claim verbatim text: it must be in the
	// law (the Chinese original is the authority) or in the curated answer.
	for _, q := range quotedSpans(text) {
		q = strings.TrimSpace(q)
		if len([]rune(q)) < minCheckedQuote || strings.Contains(ref, q) {
			continue
		}
		found := false
		for _, a := range arts {
			if strings.Contains(a.Text, q) {
				found = true
				break
			}
		}
		if !found {
			return nil, "", reasonBadQuote, false
		}
	}
	// Hotlines, amounts, rates and dates are where a model invents most
	// convincingly; each must come from the sources.
	known := map[string]bool{}
	for _, n := range numbersIn(ref) {
		known[n] = true
	}
	for _, a := range arts {
		for _, n := range numbersIn(a.Text + "\n" + a.English) {
			known[n] = true
		}
	}
	for _, n := range numbersIn(text) {
		if !known[n] {
			return nil, "", reasonBadNumber, false
		}
	}
	return cits, text, 0, true
}
