//! A simulated Midjourney Bot on the [`FakeDiscord`]: a test double for `mjlink demo` and
//! the tests, never a client of the real Midjourney. It answers `POST /api/v9/interactions`
//! (and `/api/v10/interactions`) as Discord does for Midjourney, authorised by a *user*
//! token (the raw token in `Authorization`, no `Bot ` prefix; anything else gets 401), with
//! the bodies Midjourney's own web client sends (`shared/docs/midjourney-on-discord.md`,
//! section 7):
//! - type 2, the `imagine` command with its `prompt` option: a job;
//! - type 3, a button: `MJ::JOB::upsample::N::{grid uuid}` on a grid it posted.
//!
//! A well-formed request is answered 204 at once, a malformed one 400 with Discord's JSON
//! error (`{"message", "code"}`); the work then happens in a task on tokio time
//! (`tokio::time::sleep`: a runtime with paused time, tokio's `test-util`, runs it at
//! once), one [`SimOptions::step`] between messages. Every message is posted through the
//! fake: stored in the channel's history and dispatched on the gateway, so a live bot and a
//! catch-up see the same thing. Messages are authored by Midjourney Bot
//! (`936929561302675456`), in the request's channel and guild, with snowflakes from the wall
//! clock and matching RFC 3339 timestamps; edits carry strictly increasing
//! `edited_timestamp`s, so that "newest wins" merging sees their order.
//!
//! # An `/imagine` job (section 2 of the doc)
//! 1. Start: MESSAGE_CREATE type 20 with the request's `nonce`, `interaction` (the user),
//!    `webhook_id`, content `**{prompt}** - <@{user}> (Waiting to start)`.
//! 2. Progress: MESSAGE_UPDATEs of the start, `(0%) (fast)`, then `(62%) (fast)` with the
//!    preview `{uuid}_grid_0.webp` (a link only, not served) and the button
//!    `MJ::CancelJob::ByJobid::{uuid}` (`uuid`: the job's new v4 UUID).
//! 3. Grid: a new MESSAGE_CREATE type 0, `**{prompt}** - <@{user}> (fast)`, one attachment
//!    `{user_name}_{slug}_{uuid}.png`, a real 128x128 PNG served by the fake at
//!    `{api_base}/attachments/{channel}/{attachment}/{filename}?ex=..&is=..&hm=00`, buttons
//!    U1..U4 + reroll, V1..V4. Then the start message is deleted.
//!
//! # An upscale press
//! After a step, a MESSAGE_CREATE type 19 replying to the grid (`message_reference`, and
//! `referenced_message` = the grid as the fake holds it now, `null` if it was deleted):
//! `**{prompt}** - Image #{N} <@{user}>`, a new job UUID in its file name and buttons, a real
//! 64x64 PNG (half the grid, as Midjourney's tiles are). Then the grid is edited as
//! Midjourney does: the pressed U button turns blue (`style: 1`), a MESSAGE_UPDATE.
//! Pressing the same U again gets a type-19 reply to the grid with the request's `nonce`
//! and a `Slow Down!` embed, and no image. Presses of other buttons, of unknown grids or
//! with a UUID that is not the grid's are ignored (logged).
//!
//! # The 2026 shape ([`SimOptions::shapes_2026`], off by default)
//! Section 9 of the doc: every progress edit carries the Cancel button
//! `MJ::CancelJob::ByJobid::{uuid}` naming the job's UUID (the `(0%)` one too); the grid is a
//! type-19 reply to its own start (`message_reference` to the start, `referenced_message` =
//! the start as the fake holds it then), carries the request's `nonce`, and its content has
//! the second line `\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)`;
//! an upscale carries the `nonce` of the press. The start is still deleted after the grid.
//!
//! # Markers in the prompt (they stay in the echoed prompt)
//! Checked in this order:
//! - `[banned]`: instead of a start, a type-20 message with the `nonce`, the `interaction`,
//!   empty content and the embed `Banned prompt detected` (colour 16711680).
//! - `[invalid]`: the same with `Invalid parameter`.
//! - `[queue-full]`: the *first* submission of that exact prompt gets the same kind of
//!   message with `Queue full`; later ones proceed.
//! - `[stall]`: the *first* submission posts its start and `(0%)`, then nothing ever again
//!   (its slot is given back, so it does not block the queue); later ones proceed.
//! - `[moderate]`: start and both progress updates, then the start message is deleted and
//!   no grid comes (silent moderation).
//!
//! # Concurrency, as the real one
//! At most [`SimOptions::max_running`] jobs render at once. A job beyond that waits in a
//! queue of at most [`SimOptions::max_queued`]: it first gets a type-20 message with the
//! `nonce` and the embed `Job queued`, and its start when a slot frees up (first come, first
//! served). A job beyond both gets `Queue full`. Banned and invalid prompts take no slot;
//! upscales take none either (they are quick).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::discord::{rfc3339_of, rfc3339_of_ms, FakeDiscord, HttpRequest, HttpResponse};
use crate::png::png;
use crate::snowflake::Snowflake;

/// Midjourney Bot's user id, which is also its application id.
pub const MIDJOURNEY_BOT_ID: u64 = 936_929_561_302_675_456;

/// Width and height of a simulated grid image.
pub const GRID_PIXELS: u32 = 128;
/// Width and height of a simulated upscale: half the grid, as Midjourney's tiles are.
pub const UPSCALE_PIXELS: u32 = GRID_PIXELS / 2;

/// The colour of Midjourney's error embeds.
const ERROR_COLOUR: u32 = 16_711_680;
/// The colour of the `Job queued` notice (not an error).
const NOTICE_COLOUR: u32 = 16_776_960;
/// The longest file-name slug taken from a prompt.
const MAX_SLUG_CHARS: usize = 40;
/// The second line of a final's content since 2025 (section 2 of the doc).
pub const SUBTEXT: &str =
    "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)";

/// How the simulated Midjourney behaves. `Debug` leaves the token out.
#[derive(Clone)]
pub struct SimOptions {
    /// The user token accepted in `Authorization` (raw, no `Bot ` prefix).
    pub user_token: String,
    /// The simulated user who submits jobs (mentioned in every message).
    pub user_id: u64,
    /// Their username, the first part of every image's file name.
    pub user_name: String,
    /// The pause before each message of a job.
    pub step: Duration,
    /// Jobs rendering at once.
    pub max_running: usize,
    /// Jobs waiting for a slot before `Queue full`.
    pub max_queued: usize,
    /// Post the 2026 shape (see the module's documentation) instead of the 2023 one.
    pub shapes_2026: bool,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("user_token", &"***")
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("step", &self.step)
            .field("max_running", &self.max_running)
            .field("max_queued", &self.max_queued)
            .field("shapes_2026", &self.shapes_2026)
            .finish()
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            user_token: "sim-user-token".to_string(),
            user_id: 4242,
            user_name: "demo_user".to_string(),
            step: Duration::from_millis(300),
            max_running: 3,
            max_queued: 10,
            shapes_2026: false,
        }
    }
}

/// One upscale button press received (well-formed, whether or not the grid is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpscalePress {
    pub grid_id: u64,
    pub tile: u8,
}

/// A grid the simulation posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGrid {
    pub message_id: u64,
    pub channel_id: u64,
    pub guild_id: Option<u64>,
    pub job_uuid: Uuid,
    pub prompt: String,
}

/// A request body, read: what the simulation acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Interaction {
    Imagine {
        place: Place,
        prompt: String,
    },
    Button {
        place: Place,
        message_id: u64,
        custom_id: String,
    },
}

/// Where an interaction happened and the nonce its answer echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    channel_id: u64,
    guild_id: Option<u64>,
    nonce: Option<String>,
}

/// How a job that got a slot ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Grid,
    Moderated,
    Stalled,
}

/// When a job may start rendering.
enum Slot {
    Now,
    /// Fires when a running job hands its slot over.
    Queued(oneshot::Receiver<()>),
}

/// What happens to one `/imagine`, decided when it arrives.
enum ImaginePlan {
    Refused {
        title: &'static str,
        description: &'static str,
    },
    Job {
        fate: Fate,
        slot: Slot,
    },
}

/// What happens to one upscale press, decided when it arrives.
enum PressPlan {
    Upscale { grid: SimGrid, tile: u8 },
    SlowDown(SimGrid),
    Ignored,
}

#[derive(Default)]
struct SimState {
    imagine_requests: HashMap<String, u32>,
    upscale_presses: Vec<UpscalePress>,
    grids: BTreeMap<u64, SimGrid>,
    /// The tiles already upscaled, per grid id.
    pressed: HashMap<u64, BTreeSet<u8>>,
    running: usize,
    waiting: VecDeque<oneshot::Sender<()>>,
    /// The last `edited_timestamp` given, in Unix ms.
    last_edit_ms: i64,
}

struct Inner {
    options: SimOptions,
    state: Mutex<SimState>,
}

/// The simulated Midjourney. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct SimMidjourney {
    inner: Arc<Inner>,
}

impl SimMidjourney {
    /// Mounts the simulation on `fake`'s `POST /api/v9/interactions` and
    /// `POST /api/v10/interactions`. Must be called inside a tokio runtime's context when
    /// requests arrive (they spawn the jobs' tasks), which the fake's server provides.
    pub fn attach(fake: &FakeDiscord, options: SimOptions) -> SimMidjourney {
        let sim = SimMidjourney {
            inner: Arc::new(Inner {
                options,
                state: Mutex::new(SimState::default()),
            }),
        };
        for path in ["/api/v9/interactions", "/api/v10/interactions"] {
            let handler = sim.clone();
            fake.mount("POST", path, move |fake, request| handler.answer(fake, request));
        }
        sim
    }

    pub fn options(&self) -> &SimOptions {
        &self.inner.options
    }

    /// How many `/imagine` requests with exactly this prompt arrived (accepted or refused).
    pub fn imagine_requests(&self, prompt: &str) -> u32 {
        self.lock().imagine_requests.get(prompt).copied().unwrap_or(0)
    }

    /// Every well-formed upscale press received, in order.
    pub fn upscale_presses(&self) -> Vec<UpscalePress> {
        self.lock().upscale_presses.clone()
    }

    /// The grids posted so far, oldest first.
    pub fn grids(&self) -> Vec<SimGrid> {
        self.lock().grids.values().cloned().collect()
    }

    /// Jobs holding a rendering slot now.
    pub fn running_jobs(&self) -> usize {
        self.lock().running
    }

    /// Jobs waiting for a slot now.
    pub fn queued_jobs(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one interaction request at once; the work runs in a spawned task.
    fn answer(&self, fake: &FakeDiscord, request: &HttpRequest) -> HttpResponse {
        if request.authorization != self.inner.options.user_token {
            tracing::warn!(path = %request.path, "sim midjourney: wrong or missing user token");
            return HttpResponse::error(401, "401: Unauthorized", 0);
        }
        let interaction = match parse_interaction(&request.body) {
            Ok(interaction) => interaction,
            Err(BadInteraction::Json) => {
                return HttpResponse::error(400, "The request body contains invalid JSON.", 50_109);
            }
            Err(BadInteraction::Form(reason)) => {
                tracing::warn!(%reason, "sim midjourney: malformed interaction");
                return HttpResponse::error(400, &format!("Invalid Form Body: {reason}"), 50_035);
            }
        };
        match interaction {
            Interaction::Imagine { place, prompt } => {
                let plan = self.plan_imagine(&prompt);
                let job = Job {
                    interaction_id: fake.next_snowflake(),
                    place,
                    prompt,
                };
                tokio::spawn(self.clone().run_imagine(fake.clone(), job, plan));
            }
            Interaction::Button {
                place,
                message_id,
                custom_id,
            } => {
                let plan = self.plan_press(&place, message_id, &custom_id);
                if !matches!(plan, PressPlan::Ignored) {
                    tokio::spawn(self.clone().run_press(fake.clone(), place, plan));
                }
            }
        }
        HttpResponse::empty(204)
    }

    /// Counts the request and decides its fate and slot, atomically, in arrival order.
    fn plan_imagine(&self, prompt: &str) -> ImaginePlan {
        let options = &self.inner.options;
        let mut state = self.lock();
        let submissions = state.imagine_requests.entry(prompt.to_string()).or_insert(0);
        *submissions += 1;
        let first_submission = *submissions == 1;
        if prompt.contains("[banned]") {
            return ImaginePlan::Refused {
                title: "Banned prompt detected",
                description: "Sorry! Our AI moderator thinks this prompt is probably against our community \
                              standards. (simulated)",
            };
        }
        if prompt.contains("[invalid]") {
            return ImaginePlan::Refused {
                title: "Invalid parameter",
                description: "Invalid value provided for a parameter. (simulated)",
            };
        }
        let queue_full = ImaginePlan::Refused {
            title: "Queue full",
            description: "Your job queue is full. Please wait for a job to finish first, then resubmit this \
                          one. (simulated)",
        };
        if prompt.contains("[queue-full]") && first_submission {
            return queue_full;
        }
        let slot = if state.running < options.max_running {
            state.running += 1;
            Slot::Now
        } else if state.waiting.len() < options.max_queued {
            let (turn, wait) = oneshot::channel();
            state.waiting.push_back(turn);
            Slot::Queued(wait)
        } else {
            return queue_full;
        };
        let fate = if prompt.contains("[stall]") && first_submission {
            Fate::Stalled
        } else if prompt.contains("[moderate]") {
            Fate::Moderated
        } else {
            Fate::Grid
        };
        ImaginePlan::Job { fate, slot }
    }

    /// Gives a rendering slot back: to the longest-waiting job, else to the pool.
    fn release_slot(&self) {
        let mut state = self.lock();
        while let Some(next) = state.waiting.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
        state.running = state.running.saturating_sub(1);
    }

    fn plan_press(&self, place: &Place, message_id: u64, custom_id: &str) -> PressPlan {
        let Some((tile, job_uuid)) = upscale_button(custom_id) else {
            tracing::info!(
                custom_id,
                message_id,
                "sim midjourney: button not simulated, ignored"
            );
            return PressPlan::Ignored;
        };
        let mut state = self.lock();
        state.upscale_presses.push(UpscalePress {
            grid_id: message_id,
            tile,
        });
        let grid = match state.grids.get(&message_id) {
            Some(grid) if grid.job_uuid == job_uuid && grid.channel_id == place.channel_id => grid.clone(),
            Some(_) => {
                tracing::warn!(
                    custom_id,
                    message_id,
                    "sim midjourney: button does not match its grid, ignored"
                );
                return PressPlan::Ignored;
            }
            None => {
                tracing::warn!(
                    custom_id,
                    message_id,
                    "sim midjourney: press on an unknown grid, ignored"
                );
                return PressPlan::Ignored;
            }
        };
        if state.pressed.entry(message_id).or_default().insert(tile) {
            PressPlan::Upscale { grid, tile }
        } else {
            PressPlan::SlowDown(grid)
        }
    }

    async fn run_imagine(self, fake: FakeDiscord, job: Job, plan: ImaginePlan) {
        let step = self.inner.options.step;
        tokio::time::sleep(step).await;
        let (fate, slot) = match plan {
            ImaginePlan::Refused { title, description } => {
                tracing::info!(prompt = %job.prompt, title, "sim midjourney: job refused");
                fake.post(&self.notice(&fake, &job, title, description, ERROR_COLOUR));
                return;
            }
            ImaginePlan::Job { fate, slot } => (fate, slot),
        };
        if let Slot::Queued(turn) = slot {
            tracing::info!(prompt = %job.prompt, "sim midjourney: job queued");
            let description = "The bot will start this job once others have finished. (simulated)";
            fake.post(&self.notice(&fake, &job, "Job queued", description, NOTICE_COLOUR));
            if turn.await.is_err() {
                return;
            }
            tokio::time::sleep(step).await;
        }
        let user_id = self.inner.options.user_id;
        let shapes_2026 = self.inner.options.shapes_2026;
        let channel_id = job.place.channel_id;
        let start_id = fake.next_snowflake();
        let waiting = format!("**{}** - <@{user_id}> (Waiting to start)", job.prompt);
        fake.post(&self.interaction_response(start_id, &job, &waiting, Vec::new()));
        tracing::info!(prompt = %job.prompt, start_id = start_id.0, "sim midjourney: job started");

        let job_uuid = Uuid::new_v4();
        let cancel = row(vec![button(
            &format!("MJ::CancelJob::ByJobid::{job_uuid}"),
            Some("Cancel Job"),
            None,
            2,
        )]);
        tokio::time::sleep(step).await;
        let mut zero = json!({
            "id": start_id.to_string(),
            "channel_id": channel_id.to_string(),
            "content": format!("**{}** - <@{user_id}> (0%) (fast)", job.prompt),
            "edited_timestamp": self.edit_time(start_id),
        });
        if shapes_2026 {
            zero["components"] = json!([cancel.clone()]);
        }
        fake.update(&zero);
        if fate == Fate::Stalled {
            tracing::info!(prompt = %job.prompt, start_id = start_id.0, "sim midjourney: job stalls for ever");
            self.release_slot();
            return;
        }

        tokio::time::sleep(step).await;
        let preview_name = format!("{job_uuid}_grid_0.webp");
        let preview_id = fake.next_snowflake();
        fake.update(&json!({
            "id": start_id.to_string(),
            "channel_id": channel_id.to_string(),
            "content": format!("**{}** - <@{user_id}> (62%) (fast)", job.prompt),
            "edited_timestamp": self.edit_time(start_id),
            "attachments": [{
                "id": preview_id.to_string(),
                "filename": preview_name,
                "size": 0,
                "url": format!("{}/attachments/{channel_id}/{preview_id}/{preview_name}", fake.api_base()),
                "proxy_url": format!("{}/attachments/{channel_id}/{preview_id}/{preview_name}", fake.api_base()),
                "width": GRID_PIXELS / 2,
                "height": GRID_PIXELS / 2,
                "content_type": "image/webp",
            }],
            "components": [cancel],
        }));

        tokio::time::sleep(step).await;
        if fate == Fate::Moderated {
            tracing::info!(prompt = %job.prompt, start_id = start_id.0, "sim midjourney: job moderated silently");
            fake.delete(channel_id, start_id.0);
            self.release_slot();
            return;
        }
        let (grid_id, mut grid) = self.grid_message(&fake, &job, job_uuid);
        if shapes_2026 {
            // The grid replies to its own start, as the start is now (section 9).
            grid["type"] = json!(19);
            grid["nonce"] = json!(job.place.nonce);
            grid["content"] = json!(format!(
                "{}{SUBTEXT}",
                grid["content"].as_str().unwrap_or_default()
            ));
            reply_to_message(&fake, &mut grid, channel_id, job.place.guild_id, start_id.0);
        }
        self.lock().grids.insert(
            grid_id.0,
            SimGrid {
                message_id: grid_id.0,
                channel_id,
                guild_id: job.place.guild_id,
                job_uuid,
                prompt: job.prompt.clone(),
            },
        );
        fake.post(&grid);
        fake.delete(channel_id, start_id.0);
        tracing::info!(prompt = %job.prompt, grid_id = grid_id.0, %job_uuid, "sim midjourney: grid posted");
        self.release_slot();
    }

    async fn run_press(self, fake: FakeDiscord, place: Place, plan: PressPlan) {
        tokio::time::sleep(self.inner.options.step).await;
        match plan {
            PressPlan::Ignored => {}
            PressPlan::SlowDown(grid) => {
                let id = fake.next_snowflake();
                let mut reply = self.message(id, &place, 19, "");
                reply["nonce"] = json!(place.nonce);
                reply["embeds"] = json!([embed(
                    "Slow Down!",
                    "You have already requested this upscale. (simulated)",
                    ERROR_COLOUR,
                    &grid.prompt,
                )]);
                reply_to(&fake, &mut reply, &grid);
                tracing::info!(grid_id = grid.message_id, "sim midjourney: slow down");
                fake.post(&reply);
            }
            PressPlan::Upscale { grid, tile } => self.post_upscale(&fake, &place, &grid, tile),
        }
    }

    fn post_upscale(&self, fake: &FakeDiscord, place: &Place, grid: &SimGrid, tile: u8) {
        let options = &self.inner.options;
        let job_uuid = Uuid::new_v4();
        let filename = image_file_name(&options.user_name, &grid.prompt, job_uuid);
        let attachment = image_attachment(
            fake,
            place.channel_id,
            &filename,
            UPSCALE_PIXELS,
            seed_of(job_uuid),
        );
        let id = fake.next_snowflake();
        let content = format!("**{}** - Image #{tile} <@{}>", grid.prompt, options.user_id);
        let mut reply = self.message(id, place, 19, &content);
        reply["attachments"] = json!([attachment]);
        if options.shapes_2026 {
            // Results carry the nonce of the press (section 9).
            reply["nonce"] = json!(place.nonce);
        }
        reply["components"] = json!([
            row(vec![
                button(
                    &format!("MJ::JOB::upsample_v6_2x_subtle::1::{job_uuid}::SOLO"),
                    Some("Upscale (Subtle)"),
                    None,
                    2
                ),
                button(
                    &format!("MJ::JOB::upsample_v6_2x_creative::1::{job_uuid}::SOLO"),
                    Some("Upscale (Creative)"),
                    None,
                    2
                ),
            ]),
            row(vec![
                button(
                    &format!("MJ::JOB::high_variation::1::{job_uuid}::SOLO"),
                    Some("Vary (Strong)"),
                    Some("🪄"),
                    2
                ),
                button(
                    &format!("MJ::JOB::low_variation::1::{job_uuid}::SOLO"),
                    Some("Vary (Subtle)"),
                    Some("🪄"),
                    2
                ),
            ]),
            row(vec![
                button(
                    &format!("MJ::Outpaint::50::1::{job_uuid}::SOLO"),
                    Some("Zoom Out 2x"),
                    Some("🔍"),
                    2
                ),
                button(
                    &format!("MJ::Outpaint::75::1::{job_uuid}::SOLO"),
                    Some("Zoom Out 1.5x"),
                    Some("🔍"),
                    2
                ),
                button(
                    &format!("MJ::CustomZoom::{job_uuid}"),
                    Some("Custom Zoom"),
                    Some("🔍"),
                    2
                ),
            ]),
        ]);
        reply_to(fake, &mut reply, grid);
        fake.post(&reply);
        tracing::info!(grid_id = grid.message_id, tile, upscale_id = id.0, %job_uuid, "sim midjourney: upscale posted");

        // Midjourney marks the used U button: the grid is edited, not a new job.
        if let Some(mut stored) = fake.message(grid.channel_id, grid.message_id) {
            let pressed = format!("MJ::JOB::upsample::{tile}::{}", grid.job_uuid);
            if let Some(rows) = stored.get_mut("components").and_then(Value::as_array_mut) {
                for row in rows {
                    if let Some(buttons) = row.get_mut("components").and_then(Value::as_array_mut) {
                        for button in buttons {
                            if button["custom_id"].as_str() == Some(pressed.as_str()) {
                                button["style"] = json!(1);
                            }
                        }
                    }
                }
            }
            fake.update(&json!({
                "id": grid.message_id.to_string(),
                "channel_id": grid.channel_id.to_string(),
                "components": stored["components"],
                "edited_timestamp": self.edit_time(Snowflake(grid.message_id)),
            }));
        }
    }

    /// A strictly increasing `edited_timestamp`, later than the message's own time.
    fn edit_time(&self, message_id: Snowflake) -> String {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut state = self.lock();
        let edit_ms = now_ms
            .max(state.last_edit_ms + 1)
            .max(message_id.timestamp_ms() + 1);
        state.last_edit_ms = edit_ms;
        rfc3339_of_ms(edit_ms)
    }

    /// The simulated user as Discord describes a user.
    fn user(&self) -> Value {
        let options = &self.inner.options;
        json!({
            "id": options.user_id.to_string(),
            "username": options.user_name,
            "global_name": options.user_name,
            "discriminator": "0",
            "avatar": null,
            "public_flags": 0,
        })
    }

    /// A message from Midjourney Bot with every field serenity requires.
    fn message(&self, id: Snowflake, place: &Place, message_type: u8, content: &str) -> Value {
        let mut message = json!({
            "id": id.to_string(),
            "type": message_type,
            "channel_id": place.channel_id.to_string(),
            "author": {
                "id": MIDJOURNEY_BOT_ID.to_string(),
                "username": "Midjourney Bot",
                "discriminator": "9282",
                "avatar": null,
                "public_flags": 589_824,
                "bot": true,
            },
            "content": content,
            "timestamp": rfc3339_of(id),
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": false,
            "mentions": if content.is_empty() { json!([]) } else { json!([self.user()]) },
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": false,
            "flags": 0,
        });
        if let Some(guild_id) = place.guild_id {
            message["guild_id"] = json!(guild_id.to_string());
        }
        message
    }

    /// A type-20 answer to the job's `/imagine`: nonce, interaction, webhook.
    fn interaction_response(&self, id: Snowflake, job: &Job, content: &str, embeds: Vec<Value>) -> Value {
        let mut message = self.message(id, &job.place, 20, content);
        message["nonce"] = json!(job.place.nonce);
        message["webhook_id"] = json!(MIDJOURNEY_BOT_ID.to_string());
        message["application_id"] = json!(MIDJOURNEY_BOT_ID.to_string());
        message["interaction"] = json!({
            "id": job.interaction_id.to_string(),
            "type": 2,
            "name": "imagine",
            "user": self.user(),
        });
        message["embeds"] = Value::Array(embeds);
        message
    }

    /// A type-20 answer with no content and one embed (errors, `Job queued`).
    fn notice(&self, fake: &FakeDiscord, job: &Job, title: &str, description: &str, colour: u32) -> Value {
        let id = fake.next_snowflake();
        let embeds = vec![embed(title, description, colour, &job.prompt)];
        self.interaction_response(id, job, "", embeds)
    }

    /// The final grid of `job` and its new id (minted after its attachment's, as Discord
    /// does: the upload comes first).
    fn grid_message(&self, fake: &FakeDiscord, job: &Job, job_uuid: Uuid) -> (Snowflake, Value) {
        let options = &self.inner.options;
        let filename = image_file_name(&options.user_name, &job.prompt, job_uuid);
        let attachment = image_attachment(
            fake,
            job.place.channel_id,
            &filename,
            GRID_PIXELS,
            seed_of(job_uuid),
        );
        let grid_id = fake.next_snowflake();
        let content = format!("**{}** - <@{}> (fast)", job.prompt, options.user_id);
        let mut grid = self.message(grid_id, &job.place, 0, &content);
        grid["attachments"] = json!([attachment]);
        let mut upscales: Vec<Value> = (1..=4)
            .map(|tile| {
                button(
                    &format!("MJ::JOB::upsample::{tile}::{job_uuid}"),
                    Some(&format!("U{tile}")),
                    None,
                    2,
                )
            })
            .collect();
        upscales.push(button(
            &format!("MJ::JOB::reroll::0::{job_uuid}::SOLO"),
            None,
            Some("🔄"),
            2,
        ));
        let variations: Vec<Value> = (1..=4)
            .map(|tile| {
                button(
                    &format!("MJ::JOB::variation::{tile}::{job_uuid}"),
                    Some(&format!("V{tile}")),
                    None,
                    2,
                )
            })
            .collect();
        grid["components"] = json!([row(upscales), row(variations)]);
        (grid_id, grid)
    }
}

/// Makes `reply` a reply to `grid`: `message_reference`, and `referenced_message` as the
/// fake holds the grid now (`null` when it was deleted, as Discord sends it).
fn reply_to(fake: &FakeDiscord, reply: &mut Value, grid: &SimGrid) {
    reply_to_message(fake, reply, grid.channel_id, grid.guild_id, grid.message_id);
}

/// Makes `reply` a reply to a message: `message_reference`, and `referenced_message` as the
/// fake holds it now (`null` when it was deleted).
fn reply_to_message(
    fake: &FakeDiscord,
    reply: &mut Value,
    channel_id: u64,
    guild_id: Option<u64>,
    message_id: u64,
) {
    let mut reference = json!({
        "channel_id": channel_id.to_string(),
        "message_id": message_id.to_string(),
    });
    if let Some(guild_id) = guild_id {
        reference["guild_id"] = json!(guild_id.to_string());
    }
    reply["message_reference"] = reference;
    reply["referenced_message"] = fake.message(channel_id, message_id).unwrap_or(Value::Null);
}

/// A real PNG served by the fake, described as Discord describes an attachment, with a
/// signed-looking link that expires in a day.
fn image_attachment(fake: &FakeDiscord, channel_id: u64, filename: &str, pixels: u32, seed: u64) -> Value {
    let attachment_id = fake.next_snowflake();
    let bytes = png(pixels, pixels, seed);
    let size = bytes.len();
    let path = format!("/attachments/{channel_id}/{attachment_id}/{filename}");
    fake.serve_file(&path, bytes, "image/png");
    let issued = chrono::Utc::now().timestamp();
    let expires = issued + 24 * 60 * 60;
    let url = format!("{}{path}?ex={expires:x}&is={issued:x}&hm=00", fake.api_base());
    json!({
        "id": attachment_id.to_string(),
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
        "width": pixels,
        "height": pixels,
        "content_type": "image/png",
    })
}

/// One accepted `/imagine`.
struct Job {
    interaction_id: Snowflake,
    place: Place,
    prompt: String,
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BadInteraction {
    /// Not JSON at all (Discord's code 50109).
    Json,
    /// JSON, but not an interaction the simulation takes (Discord's 50035, Invalid Form Body).
    Form(String),
}

/// Reads a request body the way Discord validates it, for the two interactions simulated.
fn parse_interaction(body: &[u8]) -> Result<Interaction, BadInteraction> {
    let value: Value = serde_json::from_slice(body).map_err(|_| BadInteraction::Json)?;
    let form = |reason: &str| BadInteraction::Form(reason.to_string());
    if !value.is_object() {
        return Err(form("the body must be a JSON object"));
    }
    let snowflake = |name: &str| -> Result<Option<u64>, BadInteraction> {
        match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Snowflake::parse(text)
                .map(|id| Some(id.0))
                .ok_or_else(|| form(&format!("{name} is not a snowflake"))),
            Some(_) => Err(form(&format!("{name} must be a string"))),
        }
    };
    if snowflake("application_id")? != Some(MIDJOURNEY_BOT_ID) {
        return Err(form("application_id must be Midjourney Bot's"));
    }
    let channel_id = snowflake("channel_id")?.ok_or_else(|| form("channel_id is required"))?;
    let guild_id = snowflake("guild_id")?;
    if !value.get("session_id").is_some_and(Value::is_string) {
        return Err(form("session_id is required"));
    }
    let nonce = match value.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.len() <= 25 => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(_) => {
            return Err(form(
                "nonce must be a string of at most 25 characters or a number",
            ))
        }
    };
    let place = Place {
        channel_id,
        guild_id,
        nonce,
    };
    let data = value
        .get("data")
        .filter(|data| data.is_object())
        .ok_or_else(|| form("data is required"))?;
    match value.get("type").and_then(Value::as_u64) {
        Some(2) => {
            if data.get("name").and_then(Value::as_str) != Some("imagine") {
                return Err(form("only the imagine command is simulated"));
            }
            let prompt = data
                .get("options")
                .and_then(Value::as_array)
                .and_then(|options| {
                    options
                        .iter()
                        .find(|option| option.get("name").and_then(Value::as_str) == Some("prompt"))
                })
                .and_then(|option| option.get("value"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|prompt| !prompt.is_empty())
                .ok_or_else(|| form("the prompt option is required"))?;
            Ok(Interaction::Imagine {
                place,
                prompt: prompt.to_string(),
            })
        }
        Some(3) => {
            let message_id = snowflake("message_id")?.ok_or_else(|| form("message_id is required"))?;
            let custom_id = data
                .get("custom_id")
                .and_then(Value::as_str)
                .filter(|custom_id| !custom_id.is_empty() && custom_id.len() <= 100)
                .ok_or_else(|| form("data.custom_id is required"))?;
            Ok(Interaction::Button {
                place,
                message_id,
                custom_id: custom_id.to_string(),
            })
        }
        _ => Err(form(
            "type must be 2 (application command) or 3 (message component)",
        )),
    }
}

/// `MJ::JOB::upsample::N::{uuid}` -> (N, uuid), N in 1..=4.
fn upscale_button(custom_id: &str) -> Option<(u8, Uuid)> {
    let rest = custom_id.strip_prefix("MJ::JOB::upsample::")?;
    let (tile, uuid) = rest.split_once("::")?;
    let tile: u8 = tile.parse().ok().filter(|tile| (1..=4).contains(tile))?;
    Some((tile, Uuid::parse_str(uuid).ok()?))
}

/// `{user_name}_{slug}_{uuid}.png`, as Midjourney names its images: the user name with
/// anything but ASCII letters, digits, `.`, `-` and `_` replaced, the prompt's ASCII words.
fn image_file_name(user_name: &str, prompt: &str, job_uuid: Uuid) -> String {
    let user: String = user_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let slug = prompt_slug(prompt);
    if slug.is_empty() {
        format!("{user}_{job_uuid}.png")
    } else {
        format!("{user}_{slug}_{job_uuid}.png")
    }
}

/// The prompt's runs of ASCII letters and digits joined with `_`, cut to 40 characters.
fn prompt_slug(prompt: &str) -> String {
    let mut slug = String::new();
    for word in prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        if !slug.is_empty() {
            slug.push('_');
        }
        slug.push_str(word);
        if slug.len() >= MAX_SLUG_CHARS {
            break;
        }
    }
    slug.truncate(MAX_SLUG_CHARS);
    slug.trim_end_matches('_').to_string()
}

/// The image seed of a job: its UUID folded to 64 bits.
fn seed_of(job_uuid: Uuid) -> u64 {
    let (high, low) = job_uuid.as_u64_pair();
    high ^ low.rotate_left(17)
}

fn row(components: Vec<Value>) -> Value {
    json!({"type": 1, "components": components})
}

fn button(custom_id: &str, label: Option<&str>, emoji: Option<&str>, style: u8) -> Value {
    let mut button = json!({"type": 2, "style": style, "custom_id": custom_id});
    if let Some(label) = label {
        button["label"] = json!(label);
    }
    if let Some(emoji) = emoji {
        button["emoji"] = json!({"name": emoji});
    }
    button
}

fn embed(title: &str, description: &str, colour: u32, prompt: &str) -> Value {
    json!({
        "type": "rich",
        "title": title,
        "description": description,
        "color": colour,
        "footer": {"text": format!("/imagine {prompt}")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

    fn imagine(prompt: Value) -> Value {
        json!({"type": 2, "application_id": "936929561302675456", "guild_id": "900", "channel_id": "901",
               "session_id": "s", "nonce": "1234",
               "data": {"version": "1", "id": "2", "name": "imagine", "type": 1,
                        "options": [{"type": 3, "name": "prompt", "value": prompt}]}})
    }

    #[test]
    fn reads_imagine_and_button_bodies() {
        assert_eq!(
            parse_interaction(&body(imagine(json!(" a cat  ")))),
            Ok(Interaction::Imagine {
                place: Place {
                    channel_id: 901,
                    guild_id: Some(900),
                    nonce: Some("1234".into())
                },
                prompt: "a cat".into()
            })
        );
        let press = json!({"type": 3, "nonce": "5", "guild_id": null, "channel_id": "901", "message_flags": 0,
                           "message_id": "77", "application_id": "936929561302675456", "session_id": "s",
                           "data": {"component_type": 2, "custom_id": "MJ::JOB::upsample::2::x"}});
        assert_eq!(
            parse_interaction(&body(press)),
            Ok(Interaction::Button {
                place: Place {
                    channel_id: 901,
                    guild_id: None,
                    nonce: Some("5".into())
                },
                message_id: 77,
                custom_id: "MJ::JOB::upsample::2::x".into()
            })
        );
    }

    #[test]
    fn refuses_malformed_bodies_without_panicking() {
        assert_eq!(parse_interaction(b"{not json"), Err(BadInteraction::Json));
        for bad in [
            json!([]),
            json!({}),
            imagine(json!("")),
            imagine(json!(5)),
            json!({"type": 2, "application_id": "1", "channel_id": "901", "session_id": "s", "data": {}}),
            json!({"type": 9, "application_id": "936929561302675456", "channel_id": "901", "session_id": "s", "data": {}}),
            json!({"type": 3, "application_id": "936929561302675456", "channel_id": "x", "session_id": "s", "data": {}}),
            json!({"type": 3, "application_id": "936929561302675456", "channel_id": "901", "session_id": "s",
                   "data": {"custom_id": "MJ::JOB::upsample::1::x"}}),
        ] {
            assert!(
                matches!(
                    parse_interaction(&body(bad.clone())),
                    Err(BadInteraction::Form(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn upscale_buttons_and_file_names() {
        let uuid = Uuid::parse_str("c09a2935-0000-4000-8000-000000000001").unwrap();
        assert_eq!(
            upscale_button(&format!("MJ::JOB::upsample::4::{uuid}")),
            Some((4, uuid))
        );
        assert_eq!(upscale_button(&format!("MJ::JOB::upsample::5::{uuid}")), None);
        assert_eq!(upscale_button(&format!("MJ::JOB::variation::1::{uuid}")), None);
        assert_eq!(upscale_button("MJ::JOB::upsample::1::not-a-uuid"), None);
        assert_eq!(
            image_file_name("demo_user", "a red fox, --ar 3:2 [moderate] 猫", uuid),
            format!("demo_user_a_red_fox_ar_3_2_moderate_{uuid}.png")
        );
        assert_eq!(image_file_name("a b", "猫", uuid), format!("a_b_{uuid}.png"));
        let long = prompt_slug(&"word ".repeat(30));
        assert!(long.len() <= MAX_SLUG_CHARS && !long.ends_with('_'), "{long}");
    }
}
