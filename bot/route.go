package bot

import (
	"context"
	"strings"
)

// route is one entry of the command and button surface. A route answers a
// slash command, a button whose data starts with "callback:", or both.
type route struct {
	command  string // "/start"; "" for buttons only
	callback string // callback data prefix before ':'; "" for commands only
	kind     string // for metrics
	help     [2]string
	// state: the route reads or writes the state store and cannot run
	// while it is down.
	state bool
	// personal: the route asks for or shows something about the user
	// (their ID, records, settings). Outside a private chat it only
	// points to one (see toPrivate); its kind is the start payload that
	// runs it there.
	personal bool
	run      func(ctx context.Context, t *turn, arg string) error
}

// routes is the whole command and button surface. Order is the order of
// /help and of the command menu.
var routes []route

// dialogs maps a dialog name to the function that takes the user's next
// text (or contact) while the chat is in that dialog.
var dialogs map[string]func(ctx context.Context, t *turn) error

func init() {
	// Assigned here rather than in the declaration because /help reads
	// the table it is part of.
	routes = []route{
		{command: "/start", kind: "start", run: runStart,
			help: [2]string{"介绍本助手能做什么", "what this assistant can do"}},
		{command: "/help", kind: "help", run: runHelp,
			help: [2]string{"所有命令", "all commands"}},
		{command: "/verify", callback: "verify", kind: "verify", state: true, personal: true, run: runVerify,
			help: [2]string{"验证身份，查看本人记录", "verify who you are to see your own records"}},
		{command: "/records", callback: "records", kind: "records", state: true, personal: true, run: runRecords,
			help: [2]string{"近24个月缴费记录", "contributions of the last 24 months"}},
		{command: "/balance", callback: "balance", kind: "balance", state: true, personal: true, run: runBalance,
			help: [2]string{"医保个人账户余额", "medical personal-account balance"}},
		{command: "/backpay", callback: "backpay", kind: "backpay", state: true, personal: true, run: runBackpay,
			help: [2]string{"断缴月份与补缴步骤", "missed months and how to make them up"}},
		{command: "/documents", callback: "documents", kind: "documents", state: true, personal: true, run: runDocuments,
			help: [2]string{"办理需要带的材料", "documents to bring"}},
		{command: "/remind", callback: "remind", kind: "remind", state: true, personal: true, run: runRemind,
			help: [2]string{"医保缴费提醒：开启、关闭、选时间", "medical-insurance reminders: on, off, time of day"}},
		{command: "/forget", callback: "forget", kind: "forget", state: true, personal: true, run: runForget,
			help: [2]string{"删除验证关联和设置", "delete your verification link and settings"}},
		{command: "/lang", callback: "lang", kind: "lang", state: true, run: runLang,
			help: [2]string{"切换语言 中文/English", "switch language 中文/English"}},
		{command: "/law", kind: "law", run: runLaw,
			help: [2]string{"依据的法律法规及施行日期", "the laws my answers rest on, and when they apply"}},
		{command: "/cancel", kind: "cancel", run: runCancel,
			help: [2]string{"退出当前操作", "leave the current step"}},
		{callback: "art", kind: "article", run: runArticleButton},
		{callback: "rel", kind: "related", run: runRelatedButton},
		{callback: "faq", kind: "faq", run: runEntryButton},
	}
	dialogs = map[string]func(ctx context.Context, t *turn) error{
		dialogVerify: stepVerify,
	}
}

// Command is a command with its one-line descriptions, for a messenger's
// command menu.
type Command struct {
	Name   string // without the slash
	ZH, EN string
}

// Commands lists the commands shown in /help, in order.
func Commands() []Command {
	var cs []Command
	for _, r := range routes {
		if r.command != "" {
			cs = append(cs, Command{Name: strings.TrimPrefix(r.command, "/"), ZH: r.help[0], EN: r.help[1]})
		}
	}
	return cs
}

// dispatch routes the turn's message.
func (e *Engine) dispatch(ctx context.Context, t *turn) error {
	m := t.msg
	if m.Limited {
		runLimited(t)
		return nil
	}
	switch {
	case m.Callback != "":
		prefix, arg, _ := strings.Cut(m.Callback, ":")
		for _, r := range routes {
			if r.callback == prefix {
				return t.runRoute(ctx, r, arg)
			}
		}
		t.kind, t.outcome = "callback", "unknown"
		t.say(t.l("这个按钮已失效，请重新发送命令。", "That button has expired. Please send the command again."))
		return nil
	case strings.HasPrefix(m.Text, "/"):
		name, arg := splitCommand(m.Text)
		if r, ok := startPayload(name, arg); ok && m.Private() {
			// A deep link from a group (see toPrivate) lands here.
			return t.runRoute(ctx, r, "")
		}
		for _, r := range routes {
			if r.command != "" && r.command == name {
				return t.runRoute(ctx, r, arg)
			}
		}
		t.kind, t.outcome = "command", "unknown"
		t.say(t.l("没有这个命令。发送 /help 查看所有命令。", "I don't know that command. Send /help to see them all."))
		return nil
	}
	if !m.Private() {
		return dispatchGroupText(ctx, t)
	}
	if d := t.st.Dialog.Name; d != "" {
		if step, ok := dialogs[d]; ok {
			t.kind = d
			return step(ctx, t)
		}
		t.endDialog() // a dialog from an older version: drop it
	}
	if m.Contact != nil && !t.stateOK {
		// Maybe the answer to a verification we cannot see right now.
		t.unavailable()
		return nil
	}
	if m.Contact != nil {
		t.kind, t.outcome = "contact", "unexpected"
		t.replies = append(t.replies, Reply{RemoveKeyboard: true, Body: body(t.l(
			"收到了联系人，但现在不需要。要验证身份，请先发送 /verify。",
			"Thanks, but I wasn't expecting a contact. To verify who you are, send /verify first."))})
		return nil
	}
	if m.Text == "" {
		t.kind, t.outcome = "nontext", "ok"
		t.say(t.l("我只能读文字消息。请用文字描述您的问题。", "I can only read text messages. Please type your question."))
		return nil
	}
	if !t.stateOK && digitRun(normalizeDigits(m.Text)) >= 11 {
		// Probably an ID number or phone typed into a dialog we cannot
		// see right now: don't treat it as a question.
		t.unavailable()
		return nil
	}
	t.kind = "faq"
	return runQuestion(ctx, t, m.Text)
}

func (t *turn) runRoute(ctx context.Context, r route, arg string) error {
	t.kind = r.kind
	if r.personal && !t.msg.Private() {
		t.toPrivate(r.kind)
		return nil
	}
	if r.state && !t.stateOK {
		t.unavailable()
		return nil
	}
	return r.run(ctx, t, arg)
}

// splitCommand returns the lower-cased command without any @BotName suffix,
// and the rest of the text.
func splitCommand(text string) (name, arg string) {
	name, arg, _ = strings.Cut(text, " ")
	name, _, _ = strings.Cut(name, "@")
	return strings.ToLower(name), strings.TrimSpace(arg)
}

// digitRun is the length of the longest run of ASCII digits in s.
func digitRun(s string) int {
	longest, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return longest
}
