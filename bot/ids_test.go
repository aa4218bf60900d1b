package bot_test

import (
	"strconv"

	"github.com/shebao/shebao/bot"
)

// tg is the identity of a Telegram chat or user id: "tg:42".
func tg(id int64) string { return bot.ID(bot.ChannelTelegram, strconv.FormatInt(id, 10)) }
