//! How a message reached the bot.

/// How a message reached the bot, which decides whether it may start a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `@threadql …` in a channel.
    Mention,
    /// A direct message to the bot.
    DirectMessage,
    /// A reply in a thread without a mention: handled only if the bot is already in the thread.
    ThreadReply,
}
