package bot

import "context"

// Group and channel chats. Everyone there reads the replies, so the engine
// never asks for or shows anything personal in one: a personal route
// (route.personal) answers with a short pointer to a private chat, a deep
// link whose start payload runs that route there; no dialog runs, and text
// that looks like an ID or phone number is not read as a question. Policy
// questions are answered as anywhere else. State is kept per chat, so a
// dialog begun in the private chat never sees what the user writes in a
// group.

// startPayload returns the personal route a "/start <payload>" deep link
// names.
func startPayload(name, arg string) (route, bool) {
	if name != "/start" || arg == "" {
		return route{}, false
	}
	for _, r := range routes {
		if r.personal && r.kind == arg {
			return r, true
		}
	}
	return route{}, false
}

// toPrivate answers a personal route in a group: a link to the private
// chat that runs it there.
func (t *turn) toPrivate(kind string) {
	t.outcome = "group"
	warn := t.l("请不要在群里发送身份证号码或手机号。", "Please never post your ID number or phone number in a group.")
	if base := t.msg.PrivateChatURL; base != "" {
		var d doc
		d.line(txt(t.l("这涉及您的个人信息，请在私聊中继续：", "This involves your personal information, so let's continue in a private chat: ")),
			link(t.l("打开与我的私聊", "open a private chat with me"), base+kind), txt(t.l("。", ".")))
		d.line(txt(warn))
		t.show(&d)
		return
	}
	t.say(t.l(
		"这涉及您的个人信息，请私聊我，发送 /"+kind+"。\n"+warn,
		"This involves your personal information: please write to me in a private chat and send /"+kind+" there.\n"+warn))
}

// dispatchGroupText handles what is not a command or a button in a group
// chat: a question is answered, nothing else is taken in.
func dispatchGroupText(ctx context.Context, t *turn) error {
	m := t.msg
	// A dialog is never continued here; one from before groups were
	// checked is dropped.
	t.endDialog()
	switch {
	case m.Contact != nil:
		t.kind = "contact"
		t.toPrivate("verify")
		return nil
	case m.Text == "":
		t.kind, t.outcome = "nontext", "group"
		return nil // not addressed to anyone in particular: stay quiet
	case digitRun(normalizeDigits(m.Text)) >= 11:
		// Probably an ID or phone number: never echoed, never a question.
		t.kind = "faq"
		t.toPrivate("verify")
		return nil
	}
	t.kind = "faq"
	return runQuestion(ctx, t, m.Text)
}
