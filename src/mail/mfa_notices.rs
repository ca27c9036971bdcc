//! Emails about an account's second factor: every change to it is told to
//! the owner, so a change someone else made does not go unnoticed.

use super::OutgoingEmail;
use super::templates::{esc, layout};
use crate::domain::email::EmailAddress;

/// A change to an account's second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaChange {
    /// The owner turned TOTP on.
    Enabled,
    /// The owner turned it off.
    Disabled,
    /// The owner made new recovery codes.
    RecoveryCodesReplaced,
    /// An administrator turned it off (a lost device).
    ResetByAdmin,
    /// A recovery code was used to log in.
    RecoveryCodeUsed,
    /// A code of the authenticator that was accepted before came back.
    CodeReplayed,
}

impl MfaChange {
    fn kind(self) -> &'static str {
        match self {
            MfaChange::Enabled => "mfa_enabled",
            MfaChange::Disabled => "mfa_disabled",
            MfaChange::RecoveryCodesReplaced => "mfa_recovery_codes_replaced",
            MfaChange::ResetByAdmin => "mfa_reset",
            MfaChange::RecoveryCodeUsed => "mfa_recovery_code_used",
            MfaChange::CodeReplayed => "mfa_code_replayed",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            MfaChange::Enabled => "Two-factor authentication is on",
            MfaChange::Disabled => "Two-factor authentication was turned off",
            MfaChange::RecoveryCodesReplaced => "New recovery codes were made",
            MfaChange::ResetByAdmin => "An administrator turned off two-factor authentication",
            MfaChange::RecoveryCodeUsed => "A recovery code was used to log in",
            MfaChange::CodeReplayed => "A used code of your authenticator app came back",
        }
    }

    fn what(self) -> &'static str {
        match self {
            MfaChange::Enabled => {
                "Two-factor authentication was just turned on for your sesame account: logins \
                 now need a code from your authenticator app. Your other sessions were logged out."
            }
            MfaChange::Disabled => {
                "Two-factor authentication was just turned off for your sesame account: logins \
                 need only the password again."
            }
            MfaChange::RecoveryCodesReplaced => {
                "New recovery codes were just made for your sesame account; the old ones no \
                 longer work."
            }
            MfaChange::ResetByAdmin => {
                "An administrator turned off two-factor authentication for your sesame account \
                 (as asked for a lost device): logins need only the password until you turn it \
                 on again."
            }
            MfaChange::RecoveryCodeUsed => {
                "One of your recovery codes was just used to log in to your sesame account. \
                 Each code works once; make new ones when few are left."
            }
            MfaChange::CodeReplayed => {
                "A code from your authenticator app that was used already (or is older than \
                 one that was) was just entered for your sesame account, and refused. If you simply entered \
                 it twice, there is nothing to do; otherwise someone who knows your password \
                 may have seen one of your codes."
            }
        }
    }
}

/// Tells the owner about a change to the second factor.
pub fn mfa_changed(app_url: &str, recipient: &EmailAddress, change: MfaChange) -> OutgoingEmail {
    let reset = format!("{app_url}/reset-password");
    let what = change.what();
    let text = format!(
        "{what}\n\n\
         If it was you, there is nothing to do.\n\n\
         If it was not you, someone may have your password: reset it now here: {reset}\n"
    );
    let html = layout(&format!(
        "<p>{what}</p>\
         <p>If it was you, there is nothing to do.</p>\
         <p>If it was not you, someone may have your password: \
         <a href=\"{reset}\">reset it now</a>.</p>",
        what = esc(what),
        reset = esc(&reset),
    ));
    OutgoingEmail {
        recipient: recipient.as_str().to_owned(),
        kind: change.kind(),
        subject: change.subject().to_owned(),
        text_body: text,
        html_body: html,
        secret: None,
    }
}
