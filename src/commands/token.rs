//! `token create|list|revoke`.

use std::process::ExitCode;

use serde_json::json;

use super::{check_clients, local_actor, now_ms, with_store, Failure};
use crate::access::tokens::{self, Role};
use crate::cli::TokenAction;
use crate::config::Settings;
use crate::export::rfc3339;
use crate::store::{AuditEntry, NewToken};

/// Runs a `token` subcommand.
pub fn token(action: TokenAction, settings: &Settings) -> ExitCode {
    match action {
        TokenAction::Create {
            name,
            role,
            clients,
            totp,
        } => {
            if let Err(f) = check_name(&name).and_then(|()| check_clients(settings, &clients)) {
                return super::report(f);
            }
            with_store(settings, |store| async move {
                let token = tokens::new_token().map_err(Failure::runtime)?;
                let secret = if totp {
                    Some(tokens::new_totp_secret().map_err(Failure::runtime)?)
                } else {
                    None
                };
                let scope = (!clients.is_empty()).then_some(clients);
                let at = now_ms();
                let audit = AuditEntry {
                    at,
                    actor: local_actor(),
                    action: "token.create".into(),
                    filters: Some(
                        json!({ "name": name, "role": role.as_str(), "clients": scope, "totp": totp })
                            .to_string(),
                    ),
                    source_ip: Some("local".into()),
                    outcome: "ok".into(),
                    ..AuditEntry::default()
                };
                let created = store
                    .create_token(
                        NewToken {
                            name: name.clone(),
                            hash: tokens::hash_token(&token),
                            role: role.as_str().into(),
                            clients: scope.clone(),
                            totp_secret: secret.clone(),
                            created_at: at,
                        },
                        audit,
                    )
                    .await?;
                if !created {
                    return Err(Failure::usage(format!(
                        "a token named `{name}` exists already"
                    )));
                }
                let scope = scope.map_or("all clients".into(), |c| {
                    format!("clients {}", c.join(", "))
                });
                println!("created {} token `{name}` for {scope}", role.as_str());
                if let Some(secret) = secret {
                    println!("second factor (add to an authenticator app, shown once):");
                    println!("{}", tokens::otpauth_uri(&name, &secret));
                }
                if role == Role::Owner && !totp {
                    eprintln!("note: without --totp this owner token can never see unmasked data");
                }
                println!("token (shown once, store it now):");
                println!("{token}");
                Ok(())
            })
        }
        TokenAction::List => with_store(settings, |store| async move {
            println!("name\trole\tclients\ttotp\tcreated\trevoked");
            for t in store.list_tokens().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.name,
                    t.role,
                    t.clients.map_or("all".into(), |c| c.join(",")),
                    if t.totp_secret.is_some() { "yes" } else { "no" },
                    rfc3339(t.created_at),
                    t.revoked_at.map_or("-".into(), rfc3339),
                );
            }
            Ok(())
        }),
        TokenAction::Revoke { name } => with_store(settings, |store| async move {
            let at = now_ms();
            let audit = AuditEntry {
                at,
                actor: local_actor(),
                action: "token.revoke".into(),
                filters: Some(json!({ "name": name }).to_string()),
                source_ip: Some("local".into()),
                outcome: "ok".into(),
                ..AuditEntry::default()
            };
            if store.revoke_token(&name, at, audit).await? {
                println!("revoked token `{name}`");
                Ok(())
            } else {
                Err(Failure::runtime(format!("no live token named `{name}`")))
            }
        }),
    }
}

/// Token names: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "`{name}` is not a token name (1 to 64 letters, digits, `.`, `_`, `-` or `@`)"
        )))
    }
}
