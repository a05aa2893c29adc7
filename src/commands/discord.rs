//! The slash commands on Discord: their definitions, their registration (per guild, or
//! globally when the config says so), and the handler: rate limit, permission, the answer
//! built off the async threads, a deferred reply when it takes longer than a moment, and
//! every refusal or error answered ephemerally in one sentence.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serenity::all::{
    ButtonStyle, Command, CommandDataOptionValue, CommandInteraction, CommandOptionType,
    ComponentInteraction, Context, CreateActionRow, CreateAttachment, CreateButton, CreateCommand,
    CreateCommandOption, CreateEmbed, CreateInteractionResponse, CreateInteractionResponseMessage,
    EditInteractionResponse, GuildId, Interaction, Permissions, ResolvedOption, ResolvedValue,
};

use super::access::{allowed, AccessConfig, Need, RateLimiter};
use super::answers::{self, Ctx, ExportFormat};
use super::{FileData, Reply, DEFAULT_ATTACHMENT_LIMIT};
use crate::store::{SearchFilter, Store, StoreError};
use mjlink_core::snowflake::Snowflake;

/// What the handler needs.
pub struct CommandState {
    pub access: AccessConfig,
    pub database: PathBuf,
    /// Where archived files are read from (the folder or the bucket).
    pub archive: crate::archive::backend::Backend,
    limiter: Mutex<RateLimiter>,
}

impl CommandState {
    /// From `[commands]` (the access rules), the database and the archive.
    pub fn from_config(config: &crate::config::Config) -> Result<CommandState, crate::config::ConfigError> {
        Ok(CommandState::new(
            config.commands.clone(),
            config.database_path.clone(),
            crate::archive::backend::Backend::from_config(&config.archive)?,
        ))
    }

    pub fn new(
        access: AccessConfig,
        database: PathBuf,
        archive: crate::archive::backend::Backend,
    ) -> CommandState {
        CommandState {
            access,
            database,
            archive,
            limiter: Mutex::new(RateLimiter::default()),
        }
    }
}

fn string_option(name: &str, description: &str, required: bool) -> CreateCommandOption {
    CreateCommandOption::new(CommandOptionType::String, name, description).required(required)
}

/// The commands as registered.
pub fn definitions() -> Vec<CreateCommand> {
    let id_option = || string_option("id", "The item's id (or the start of it)", true);
    vec![
        CreateCommand::new("lineage")
            .description(
                "Where a Midjourney image came from: its grid and every result, with the archived images",
            )
            .add_option(string_option(
                "message",
                "A message link (Copy Message Link) or id",
                true,
            )),
        CreateCommand::new("search")
            .description("Search the prompts of every grid and result, newest first")
            .add_option(string_option(
                "text",
                "Words that must all be in the prompt",
                true,
            ))
            .add_option(
                CreateCommandOption::new(CommandOptionType::User, "user", "Only this user's").required(false),
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::Channel, "channel", "Only in this channel")
                    .required(false),
            )
            .add_option(string_option("since", "Only since this date (YYYY-MM-DD)", false)),
        CreateCommand::new("stats").description("Grids, results, links, archive and queue in figures"),
        CreateCommand::new("export")
            .description("The lineage of a channel (or of all) as a file")
            .add_option(
                CreateCommandOption::new(CommandOptionType::Channel, "channel", "Only this channel")
                    .required(false),
            )
            .add_option(
                string_option("format", "json or csv", false)
                    .add_string_choice("json", "json")
                    .add_string_choice("csv", "csv"),
            ),
        CreateCommand::new("queue")
            .description("Drive the prompt queue")
            // Hidden from members without Manage Server unless a server admin opens it up;
            // the handler checks commands.queue_roles / queue_users either way.
            .default_member_permissions(Permissions::MANAGE_GUILD)
            .add_option(
                CreateCommandOption::new(CommandOptionType::SubCommand, "add", "Queue a prompt")
                    .add_sub_option(string_option("prompt", "Sent exactly as written", true))
                    .add_sub_option(string_option("upscale", "all (default), none, or tiles like 1,3", false)),
            )
            .add_option(CreateCommandOption::new(CommandOptionType::SubCommand, "list", "The queue"))
            .add_option(
                CreateCommandOption::new(CommandOptionType::SubCommand, "show", "One item").add_sub_option(id_option()),
            )
            .add_option(
                CreateCommandOption::new(CommandOptionType::SubCommand, "cancel", "Cancel an item")
                    .add_sub_option(id_option()),
            )
            .add_option(CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "pause",
                "Send nothing new (jobs already sent are still collected)",
            ))
            .add_option(CreateCommandOption::new(
                CommandOptionType::SubCommand,
                "resume",
                "Send again",
            )),
    ]
}

/// Registers the commands in `guilds` (or globally). A failure is logged: the bot keeps
/// watching.
pub async fn register(ctx: &Context, state: &CommandState, guilds: &[GuildId]) {
    if state.access.global {
        match Command::set_global_commands(&ctx.http, definitions()).await {
            Ok(commands) => tracing::info!(commands = commands.len(), "slash commands registered globally"),
            Err(error) => tracing::warn!(%error, "cannot register the slash commands globally"),
        }
        return;
    }
    for guild in guilds {
        match guild.set_commands(&ctx.http, definitions()).await {
            Ok(commands) => {
                tracing::info!(guild_id = %guild, commands = commands.len(), "slash commands registered")
            }
            Err(error) => {
                tracing::warn!(guild_id = %guild, %error, "cannot register the slash commands in this guild (does the bot have the applications.commands scope?)")
            }
        }
    }
}

fn option_text<'a>(options: &'a [ResolvedOption<'a>], name: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| match o.value {
            ResolvedValue::String(text) => Some(text),
            _ => None,
        })
}

/// A user or channel option's id, resolved or not.
fn option_id(command: &CommandInteraction, name: &str) -> Option<Snowflake> {
    command
        .data
        .options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| match &o.value {
            CommandDataOptionValue::User(id) => Some(Snowflake(id.get())),
            CommandDataOptionValue::Channel(id) => Some(Snowflake(id.get())),
            _ => None,
        })
}

/// What one command asks for, parsed from the interaction (so the work can move threads).
enum Request {
    Lineage(String),
    Search(String, SearchFilter, usize),
    Stats,
    Export(Option<Snowflake>, ExportFormat),
    QueueAdd(String, Option<String>),
    QueueList,
    QueueShow(String),
    QueueCancel(String),
    QueuePause(bool),
}

impl Request {
    fn need(&self) -> Need {
        match self {
            Request::Lineage(_) | Request::Search(..) | Request::Stats | Request::Export(..) => Need::Read,
            _ => Need::QueueControl,
        }
    }

    fn from_command(command: &CommandInteraction) -> Result<Request, String> {
        let options = command.data.options();
        let text = |name: &str| option_text(&options, name).unwrap_or("").to_string();
        Ok(match command.data.name.as_str() {
            "lineage" => Request::Lineage(text("message")),
            "search" => {
                let since = option_text(&options, "since");
                let since_ms = match since {
                    Some(day) => Some(
                        mjlink_core::text::parse_time(day)
                            .ok_or_else(|| format!("`{day}` is not a date like 2024-05-01."))?,
                    ),
                    None => None,
                };
                let filter = SearchFilter {
                    user_id: option_id(command, "user"),
                    channel_id: option_id(command, "channel"),
                    since_ms,
                };
                Request::Search(text("text"), filter, 0)
            }
            "stats" => Request::Stats,
            "export" => {
                let format = match option_text(&options, "format") {
                    None | Some("json") => ExportFormat::Json,
                    Some("csv") => ExportFormat::Csv,
                    Some(other) => return Err(format!("`{other}` is not a format: json or csv.")),
                };
                Request::Export(option_id(command, "channel"), format)
            }
            "queue" => {
                let Some(sub) = options.first() else {
                    return Err("Use /queue add, list, show, cancel, pause or resume.".to_string());
                };
                let sub_options = match &sub.value {
                    ResolvedValue::SubCommand(options) => options.as_slice(),
                    _ => &[],
                };
                let sub_text = |name: &str| option_text(sub_options, name).unwrap_or("").to_string();
                match sub.name {
                    "add" => Request::QueueAdd(
                        sub_text("prompt"),
                        option_text(sub_options, "upscale").map(str::to_string),
                    ),
                    "list" => Request::QueueList,
                    "show" => Request::QueueShow(sub_text("id")),
                    "cancel" => Request::QueueCancel(sub_text("id")),
                    "pause" => Request::QueuePause(true),
                    "resume" => Request::QueuePause(false),
                    other => return Err(format!("/queue has no `{other}`.")),
                }
            }
            other => return Err(format!("I do not know the command /{other}.")),
        })
    }

    /// Builds the answer from the database (blocking: run it off the async threads).
    fn answer(
        self,
        state: &CommandState,
        guild_id: Option<Snowflake>,
        now_ms: i64,
    ) -> Result<Reply, StoreError> {
        let mut store = Store::open(&state.database)?;
        let ctx = |store| Ctx {
            store,
            guild_id,
            now_ms,
        };
        match self {
            Request::Lineage(input) => answers::lineage(&ctx(&store), &input),
            Request::Search(words, filter, page) => answers::search(&ctx(&store), &words, &filter, page),
            Request::Stats => answers::stats(&ctx(&store)),
            Request::Export(channel, format) => answers::export(&ctx(&store), channel, format),
            Request::QueueAdd(prompt, upscale) => {
                answers::queue_add(&mut store, now_ms, &prompt, upscale.as_deref())
            }
            Request::QueueList => answers::queue_list(&ctx(&store)),
            Request::QueueShow(id) => answers::queue_show(&ctx(&store), &id),
            Request::QueueCancel(id) => answers::queue_cancel(&mut store, now_ms, &id),
            Request::QueuePause(paused) => answers::queue_pause(&ctx(&store), paused),
        }
    }
}

async fn attachments(reply: &Reply, archive: &crate::archive::backend::Backend) -> Vec<CreateAttachment> {
    let mut files = Vec::new();
    for file in &reply.files {
        let bytes = match &file.data {
            FileData::Bytes(bytes) => bytes.clone(),
            FileData::Archived(path) => match archive.read(path).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(%path, %error, "an archived file could not be read");
                    continue;
                }
            },
        };
        files.push(CreateAttachment::bytes(bytes, file.name.clone()));
    }
    files
}

fn embeds(reply: &Reply) -> Vec<CreateEmbed> {
    reply
        .embeds
        .iter()
        .map(|embed| {
            let mut out = CreateEmbed::new().title(&embed.title);
            if !embed.description.is_empty() {
                out = out.description(&embed.description);
            }
            if let Some(url) = &embed.url {
                out = out.url(url);
            }
            for (name, value, inline) in &embed.fields {
                out = out.field(name, value, *inline);
            }
            out
        })
        .collect()
}

fn buttons(reply: &Reply) -> Vec<CreateActionRow> {
    if reply.buttons.is_empty() {
        return Vec::new();
    }
    vec![CreateActionRow::Buttons(
        reply
            .buttons
            .iter()
            .map(|button| {
                CreateButton::new(&button.custom_id)
                    .label(&button.label)
                    .style(ButtonStyle::Secondary)
                    .disabled(button.disabled)
            })
            .collect(),
    )]
}

async fn message(
    reply: &Reply,
    archive: &crate::archive::backend::Backend,
) -> CreateInteractionResponseMessage {
    let mut message = CreateInteractionResponseMessage::new()
        .content(&reply.content)
        .embeds(embeds(reply))
        .components(buttons(reply))
        .ephemeral(reply.ephemeral);
    for file in attachments(reply, archive).await {
        message = message.add_file(file);
    }
    message
}

/// Handles one interaction. Never fails: errors are answered (or logged when even the
/// answer cannot be sent).
pub async fn handle(ctx: &Context, interaction: Interaction, state: &std::sync::Arc<CommandState>) {
    match interaction {
        Interaction::Command(command) => handle_command(ctx, command, state).await,
        Interaction::Component(component) => handle_component(ctx, component, state).await,
        _ => {}
    }
}

fn gate(
    state: &CommandState,
    need: Need,
    user: Snowflake,
    roles: &[Snowflake],
    now_ms: i64,
) -> Result<(), String> {
    state
        .limiter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .check(user, now_ms, state.access.per_user_per_minute)?;
    allowed(&state.access, need, user, roles)
}

/// Who asks: the user, their roles in the server, and the server.
fn asker(
    user: &serenity::all::User,
    member: Option<&serenity::all::Member>,
    guild: Option<GuildId>,
) -> (Snowflake, Vec<Snowflake>, Option<Snowflake>) {
    let roles = member
        .map(|member| member.roles.iter().map(|role| Snowflake(role.get())).collect())
        .unwrap_or_default();
    (
        Snowflake(user.id.get()),
        roles,
        guild.map(|id| Snowflake(id.get())),
    )
}

async fn handle_command(ctx: &Context, command: CommandInteraction, state: &std::sync::Arc<CommandState>) {
    let now_ms = crate::clock::now_ms();
    let (user, roles, guild) = asker(&command.user, command.member.as_deref(), command.guild_id);
    let limit = match command.attachment_size_limit {
        0 => DEFAULT_ATTACHMENT_LIMIT,
        limit => u64::from(limit),
    };
    tracing::info!(command = %command.data.name, user_id = %user, guild_id = ?guild.map(|g| g.0), "slash command");
    let request = Request::from_command(&command)
        .and_then(|request| gate(state, request.need(), user, &roles, now_ms).map(|()| request));
    let request = match request {
        Ok(request) => request,
        Err(refusal) => {
            respond(ctx, &command, Reply::refusal(refusal), state).await;
            return;
        }
    };
    let worker_state = std::sync::Arc::clone(state);
    let mut work = tokio::task::spawn_blocking(move || request.answer(&worker_state, guild, now_ms));
    // 0: always defer.
    let outcome = match state.access.defer_after_ms {
        0 => None,
        wait_ms => tokio::select! {
            outcome = &mut work => Some(outcome),
            () = tokio::time::sleep(Duration::from_millis(wait_ms)) => None,
        },
    };
    let to_reply = |outcome: Result<Result<Reply, StoreError>, tokio::task::JoinError>| match outcome {
        Ok(Ok(reply)) => reply.fit(limit),
        Ok(Err(error)) => {
            tracing::error!(%error, "a command failed");
            Reply::refusal("Something went wrong reading the database; the log says what.")
        }
        Err(_) => Reply::refusal("Something went wrong; the log says what."),
    };
    match outcome {
        Some(outcome) => respond(ctx, &command, to_reply(outcome), state).await,
        None => {
            // Taking a while: say so within Discord's 3 seconds, then edit in the answer.
            if let Err(error) = command.defer(&ctx.http).await {
                tracing::warn!(%error, "cannot defer the reply");
            }
            let reply = to_reply(work.await);
            let mut edit = EditInteractionResponse::new()
                .content(&reply.content)
                .embeds(embeds(&reply))
                .components(buttons(&reply));
            for file in attachments(&reply, &state.archive).await {
                edit = edit.new_attachment(file);
            }
            if let Err(error) = command.edit_response(&ctx.http, edit).await {
                tracing::warn!(%error, "cannot send the deferred reply");
            }
        }
    }
}

async fn respond(ctx: &Context, command: &CommandInteraction, reply: Reply, state: &CommandState) {
    let response = CreateInteractionResponse::Message(message(&reply, &state.archive).await);
    if let Err(error) = command.create_response(&ctx.http, response).await {
        tracing::warn!(%error, "cannot send the reply");
    }
}

/// The page buttons of `/search`.
async fn handle_component(
    ctx: &Context,
    component: ComponentInteraction,
    state: &std::sync::Arc<CommandState>,
) {
    let now_ms = crate::clock::now_ms();
    let (user, roles, guild) = asker(&component.user, component.member.as_ref(), component.guild_id);
    let Some((words, filter, page)) = answers::parse_page_button(&component.data.custom_id) else {
        return;
    };
    let reply = match gate(state, Need::Read, user, &roles, now_ms) {
        Err(refusal) => Reply::refusal(refusal),
        Ok(()) => {
            let worker_state = std::sync::Arc::clone(state);
            let answer = tokio::task::spawn_blocking(move || {
                Request::Search(words, filter, page).answer(&worker_state, guild, now_ms)
            })
            .await;
            match answer {
                Ok(Ok(reply)) => reply.fit(DEFAULT_ATTACHMENT_LIMIT),
                _ => Reply::refusal("Something went wrong; the log says what."),
            }
        }
    };
    let response = if reply.ephemeral {
        CreateInteractionResponse::Message(message(&reply, &state.archive).await)
    } else {
        CreateInteractionResponse::UpdateMessage(message(&reply, &state.archive).await)
    };
    if let Err(error) = component.create_response(&ctx.http, response).await {
        tracing::warn!(%error, "cannot update the search page");
    }
}
