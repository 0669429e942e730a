//! User profiles (org API key): `PUT|GET|DELETE /api/v1/orgs/{orgId}/users/{userId}`.
//!
//! A profile holds the contact points user-facing channels use when an event does not carry
//! them (the event's own win), the user's time zone and their opt-outs (channel ids or kinds).
//! The org's suppression list is keyed by address, not by user: neither a `PUT` nor a `DELETE`
//! here changes it (docs/hygiene.md). One-click unsubscribes are records of their own beside
//! the profile: a `PUT` does not undo them; `DELETE .../users/{userId}/unsubscribes/{channelId}`
//! does. `GET` shows both.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, put};
use axum::{Json, Router};
use chrono::Utc;
use herald_core::domain::channel::ChannelKind;
use herald_core::domain::suppression::Suppression;
use herald_core::domain::suppression::{SuppressedAddress, SuppressionKind};
use herald_core::domain::user::{self, UserProfile};
use herald_core::domain::{ChannelId, UserId};
use herald_shared::repo::unsubscribes::{self, Unsubscribed};
use herald_shared::repo::{Feeds, RepoError};
use herald_shared::repo::{suppressions, users};
use herald_shared::store::keys;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::OrgAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, ErrorBody};

const ITEM: &str = "/api/v1/orgs/{orgId}/users/{userId}";
const UNSUBSCRIBE: &str = "/api/v1/orgs/{orgId}/users/{userId}/unsubscribes/{channelId}";
/// Most push tokens and opt-outs a profile holds.
const MAX_LIST: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ITEM, put(put_user).get(get_user).delete(delete_user))
        .route(UNSUBSCRIBE, delete(resubscribe))
}

/// `PUT .../users/{userId}` body: the whole profile (fields left out are cleared).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutUser {
    pub email: Option<String>,
    /// E.164, e.g. `+14155550123`.
    pub phone: Option<String>,
    pub push_tokens: Option<Vec<String>>,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
    /// Channel ids or channel kinds (`email`, `sms`, `push`, `in_app`) the user opted out of;
    /// anything else is refused (422).
    pub opt_outs: Option<Vec<String>>,
}

fn user_id(raw: &str) -> ApiResult<UserId> {
    UserId::parse(raw).map_err(|e| ApiError::invalid_field("userId", e.message))
}

fn bounded(list: Option<Vec<String>>, field: &str) -> ApiResult<Vec<String>> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_LIST {
        return Err(ApiError::invalid_field(
            field,
            format!("at most {MAX_LIST} entries"),
        ));
    }
    if let Some(i) = list
        .iter()
        .position(|s| s.is_empty() || s.len() > 4096 || s.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_field(
            format!("{field}[{i}]"),
            "must be 1–4096 printable characters",
        ));
    }
    Ok(list)
}

/// The kinds a user can opt out of: those that deliver to a person.
const OPT_OUT_KINDS: [ChannelKind; 4] = [
    ChannelKind::Email,
    ChannelKind::Sms,
    ChannelKind::Push,
    ChannelKind::InApp,
];

/// Opt-outs are channel ids (kept in canonical form, as the dispatcher compares them) or
/// user-facing channel kinds; anything else could never match and would silently opt out of
/// nothing.
fn opt_outs(list: Option<Vec<String>>) -> ApiResult<Vec<String>> {
    bounded(list, "optOuts")?
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            if let Some(kind) = OPT_OUT_KINDS.iter().find(|k| k.as_str() == o) {
                return Ok(kind.as_str().to_owned());
            }
            o.parse::<ChannelId>()
                .map(|id| id.to_string())
                .map_err(|_| {
                    ApiError::invalid_field(
                        format!("optOuts[{i}]"),
                        "must be a channel id or one of email, sms, push, in_app",
                    )
                })
        })
        .collect()
}

/// Stores a user's profile, replacing any previous one. An address on the org's suppression list
/// stays suppressed whatever the profile says.
#[utoipa::path(
    put, path = ITEM, tag = "users",
    params(("orgId" = String, Path, description = "Org id"), ("userId" = String, Path, description = "Your id for the user")),
    request_body = PutUser,
    responses(
        (status = 200, description = "The stored profile", body = UserProfile),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 422, description = "Invalid email, phone (E.164), time zone or opt-out (a channel id or email|sms|push|in_app)", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn put_user(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, user)): Path<(String, String)>,
    JsonBody(body): JsonBody<PutUser>,
) -> ApiResult<Json<UserProfile>> {
    let user_id = user_id(&user)?;
    if let Some(email) = &body.email {
        user::validate_email(email)?;
    }
    if let Some(phone) = &body.phone {
        user::validate_phone(phone)?;
    }
    if let Some(tz) = &body.timezone {
        user::validate_timezone(tz)?;
    }
    let profile = UserProfile {
        user_id,
        org_id: auth.org_id,
        email: body.email,
        phone: body.phone,
        push_tokens: bounded(body.push_tokens, "pushTokens")?,
        timezone: body.timezone,
        opt_outs: opt_outs(body.opt_outs)?,
        updated_at: Utc::now(),
    };
    users::put(state.store.as_ref(), &profile)
        .await
        .map_err(|e| ApiError::from_repo(e, "user"))?;
    Ok(Json(profile))
}

/// A user as `GET` shows them: the stored profile, and what else stops messages to them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[serde(flatten)]
    pub profile: UserProfile,
    /// One-click unsubscribes (`POST /u/{token}`), kept apart from the profile: a `PUT` does
    /// not undo them; `DELETE .../users/{userId}/unsubscribes/{channelId}` does.
    pub unsubscribed: Vec<Unsubscribed>,
    /// The profile's email address and phone number, where on the org's suppression list
    /// (read-only here; `DELETE /notifications/suppressions/{kind}/{address}` removes one).
    pub suppressed: Vec<Suppression>,
}

/// Reads a user's profile, their one-click unsubscribes and their suppressed addresses.
#[utoipa::path(
    get, path = ITEM, tag = "users",
    params(("orgId" = String, Path, description = "Org id"), ("userId" = String, Path, description = "Your id for the user")),
    responses(
        (status = 200, description = "The profile, with `unsubscribed` and `suppressed`", body = UserView),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No profile and no one-click unsubscribe for this user", body = ErrorBody),
        (status = 422, description = "Not a user id", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn get_user(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<Json<UserView>> {
    let user_id = user_id(&user)?;
    let store = state.store.as_ref();
    let repo = |e| ApiError::from_repo(e, "user");
    let profile = users::get(store, &auth.org_id, &user_id)
        .await
        .map_err(repo)?;
    let unsubscribed = unsubscribes::list(store, &auth.org_id, &user_id)
        .await
        .map_err(repo)?;
    let profile = match (profile, unsubscribed.iter().map(|u| u.at).max()) {
        (Some(p), _) => p,
        // Unsubscribed with one click, never given a profile.
        (None, Some(at)) => UserProfile {
            user_id,
            org_id: auth.org_id,
            email: None,
            phone: None,
            push_tokens: Vec::new(),
            timezone: None,
            opt_outs: Vec::new(),
            updated_at: at,
        },
        (None, None) => return Err(ApiError::not_found("user")),
    };
    let addresses: Vec<SuppressedAddress> = [
        (SuppressionKind::Email, profile.email.as_deref()),
        (SuppressionKind::Sms, profile.phone.as_deref()),
    ]
    .into_iter()
    .filter_map(|(kind, raw)| SuppressedAddress::parse(kind, raw?).ok())
    .collect();
    let wanted: Vec<_> = addresses
        .iter()
        .map(|a| keys::suppression(&auth.org_id, a))
        .collect();
    let suppressed = store
        .get_many(&wanted)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .flatten()
        .map(suppressions::from_item)
        .collect::<Result<Vec<_>, _>>()
        .map_err(repo)?;
    Ok(Json(UserView {
        profile,
        unsubscribed,
        suppressed,
    }))
}

/// Undoes a user's one-click unsubscribe from a channel (the customer's call, e.g. the user
/// opted back in on the customer's preference page).
#[utoipa::path(
    delete, path = UNSUBSCRIBE, tag = "users",
    params(
        ("orgId" = String, Path, description = "Org id"),
        ("userId" = String, Path, description = "Your id for the user"),
        ("channelId" = String, Path, description = "The channel the user unsubscribed from"),
    ),
    responses(
        (status = 204, description = "The user gets the channel's emails again"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "The user has no one-click unsubscribe from this channel", body = ErrorBody),
        (status = 422, description = "Not a user id", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn resubscribe(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, user, channel)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let user_id = user_id(&user)?;
    let channel: ChannelId = channel
        .parse()
        .map_err(|_| ApiError::not_found("unsubscribe"))?;
    unsubscribes::remove(state.store.as_ref(), &auth.org_id, &user_id, channel)
        .await
        .map_err(|e| ApiError::from_repo(e, "unsubscribe"))?;
    tracing::info!(org_id = %auth.org_id, channel_id = %channel, "one-click unsubscribe undone");
    Ok(StatusCode::NO_CONTENT)
}

/// Erases a user's profile (and their feed). Suppression entries for their addresses are kept:
/// they are keyed by address, not by user (remove one with
/// `DELETE /notifications/suppressions/{kind}/{address}`); so are their one-click unsubscribes
/// (a re-imported user stays unsubscribed; `DELETE .../unsubscribes/{channelId}` removes one).
#[utoipa::path(
    delete, path = ITEM, tag = "users",
    params(("orgId" = String, Path, description = "Org id"), ("userId" = String, Path, description = "Your id for the user")),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 404, description = "No profile and no feed for this user", body = ErrorBody),
        (status = 422, description = "Not a user id", body = ErrorBody),
    ),
    security(("apiKey" = []))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((_, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let user_id = user_id(&user)?;
    let profile = match users::delete(state.store.as_ref(), &auth.org_id, &user_id).await {
        Ok(()) => true,
        Err(RepoError::NotFound) => false,
        Err(e) => return Err(ApiError::from_repo(e, "user")),
    };
    // The feed goes with the person (SPEC §2), even when events reached them without a
    // profile; open connections are left to their TTL.
    let feed_items = Feeds::new(state.store.as_ref())
        .delete_user_feed(&auth.org_id, &user_id)
        .await
        .map_err(|e| ApiError::from_repo(e, "feed"))?;
    if !profile && feed_items == 0 {
        return Err(ApiError::not_found("user"));
    }
    tracing::info!(org_id = %auth.org_id, profile, feed_items, "user erased");
    Ok(StatusCode::NO_CONTENT)
}
