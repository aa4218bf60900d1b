package wechat

import (
	"context"
	"fmt"

	"github.com/silenceper/wechat/v2/officialaccount/menu"
)

// MenuButton is one button of the Official Account's menu: a CLICK
// button whose key runs a command (MenuKey).
type MenuButton struct {
	Name    string // as shown, at most 4 Chinese characters for a top-level button
	Command string // "records" or "/records"
}

// DefaultMenu is the menu `shebao wechat menu` sets: 政策问答 (how to ask,
// /help), 我的记录 (/records, which starts verification when needed),
// 提醒设置 (/remind).
func DefaultMenu() []MenuButton {
	return []MenuButton{
		{Name: "政策问答", Command: "help"},
		{Name: "我的记录", Command: "records"},
		{Name: "提醒设置", Command: "remind"},
	}
}

// SetMenu replaces the Official Account's default menu with buttons (one
// to three). It uses the access token shared through the Store, so
// running it beside serve does not invalidate serve's token.
func (a *Adapter) SetMenu(ctx context.Context, buttons []MenuButton) error {
	if len(buttons) == 0 || len(buttons) > 3 {
		return fmt.Errorf("wechat menu: want 1 to 3 buttons, not %d", len(buttons))
	}
	var bs []*menu.Button
	for _, b := range buttons {
		if clickCommand(MenuKey(b.Command)) == "/start" && b.Command != "start" && b.Command != "/start" {
			return fmt.Errorf("wechat menu: %q is not a command", b.Command)
		}
		bs = append(bs, new(menu.Button).SetClickButton(b.Name, MenuKey(b.Command)))
	}
	body := struct {
		Button []*menu.Button `json:"button"`
	}{bs}
	if err := a.call(ctx, "/cgi-bin/menu/create", body); err != nil {
		return fmt.Errorf("wechat menu: %w", err)
	}
	return nil
}
