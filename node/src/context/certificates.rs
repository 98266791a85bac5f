//! Service certificates signed by the issuing node, and their verification
//! with only the county CA certificate.
//!
//! Sealing: the fields' digests (`files::report::certificate_fields`) are
//! signed with the node's certificate key (`net::seal`); the certificate
//! carries the digests, the signature and the node's certificate, and its
//! printed verification code is derived from the signature.
//!
//! Verifying answers **valid**, or each thing that is wrong, in the order a
//! verifier can trust them: the issuer certificate (chained to this
//! county's CA, not expired), then the signature over the field list, then
//! field by field what changed since signing, then whether the issuer may
//! certify this volunteer (the volunteer's home station or a station above
//! it, and the station the certificate says recorded it), then the printed
//! code. A problem with the issuer or the signature ends the check: nothing
//! after it could be trusted.

use crate::files::report::{
    certificate_fields, changed_fields, seal_message, verification_code_of, CertificateSeal,
    ServiceCertificate,
};
use crate::net::pki::NodeIdentity;
use crate::net::seal;
use civsync_protocol::StationId;
use rustls::pki_types::CertificateDer;
use serde::Serialize;

/// One thing wrong with a certificate: the field (or `seal`, `issuer`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateProblem {
    pub field: String,
    pub reason: String,
}

/// The answer of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateVerdict {
    pub valid: bool,
    /// One line: `valid: ...` or what is wrong.
    pub summary: String,
    /// Empty when valid.
    pub problems: Vec<CertificateProblem>,
    /// The station whose key signed, when its certificate was trusted.
    pub issuer_station: Option<StationId>,
    pub verification_code: String,
}

/// Sign `certificate` with the node's key and fill its verification code.
pub fn seal_certificate(
    certificate: &mut ServiceCertificate,
    identity: &NodeIdentity,
) -> Result<(), seal::SignError> {
    let fields = certificate_fields(certificate);
    let signature = seal::sign(identity, &seal_message(&fields))?;
    certificate.verification_code = verification_code_of(&signature);
    certificate.seal = Some(CertificateSeal {
        algorithm: seal::SIGNATURE_ALGORITHM.to_string(),
        issuer_certificate: seal::signer_pem(identity),
        fields,
        signature: hex(&signature),
    });
    Ok(())
}

/// Verify `certificate` against the county CA `ca` (of county `county`) at
/// `now_unix_s`.
pub fn verify_certificate(
    certificate: &ServiceCertificate,
    ca: &CertificateDer<'static>,
    county: &StationId,
    now_unix_s: i64,
) -> CertificateVerdict {
    let refuse = |problems: Vec<CertificateProblem>, issuer: Option<StationId>| {
        let summary = summary_of(&problems);
        CertificateVerdict {
            valid: false,
            summary,
            problems,
            issuer_station: issuer,
            verification_code: certificate.verification_code.clone(),
        }
    };
    let problem = |field: &str, reason: String| CertificateProblem {
        field: field.to_string(),
        reason,
    };
    let Some(sealed) = &certificate.seal else {
        return refuse(
            vec![problem(
                "seal",
                "the certificate is not signed (no seal); ask the issuing office for a new one"
                    .to_string(),
            )],
            None,
        );
    };
    if sealed.algorithm != seal::SIGNATURE_ALGORITHM {
        return refuse(
            vec![problem(
                "seal.algorithm",
                format!(
                    "{:?} is not the signature algorithm certificates use ({})",
                    sealed.algorithm,
                    seal::SIGNATURE_ALGORITHM
                ),
            )],
            None,
        );
    }
    let (leaf, issuer) =
        match seal::check_signer(&sealed.issuer_certificate, ca, county, now_unix_s) {
            Ok(found) => found,
            Err(refusal) => {
                return refuse(
                    vec![problem("seal.issuer_certificate", refusal.to_string())],
                    None,
                )
            }
        };
    let signature = match unhex(&sealed.signature) {
        Some(bytes) => bytes,
        None => {
            return refuse(
                vec![problem("seal.signature", "is not hex".to_string())],
                Some(issuer.station),
            )
        }
    };
    if !seal::signature_matches(&leaf, &seal_message(&sealed.fields), &signature) {
        return refuse(
            vec![problem(
                "seal",
                format!(
                    "the signature does not match the seal's field list: the list was altered, or it was signed by a key other than that of the issuer certificate ({})",
                    issuer.station
                ),
            )],
            Some(issuer.station),
        );
    }
    let mut problems: Vec<CertificateProblem> = changed_fields(certificate, &sealed.fields)
        .into_iter()
        .map(|(field, reason)| CertificateProblem { field, reason })
        .collect();
    if certificate.recording_station != issuer.station {
        problems.push(problem(
            "recording_station",
            format!(
                "the certificate says it was recorded by {} but is signed by station {}",
                certificate.recording_station, issuer.station
            ),
        ));
    }
    if !issuer
        .station
        .is_ancestor_or_self_of(&certificate.home_station)
    {
        problems.push(problem(
            "home_station",
            format!(
                "issuer station {} may not certify volunteers of {}",
                issuer.station, certificate.home_station
            ),
        ));
    }
    let code = verification_code_of(&signature);
    if certificate.verification_code != code {
        problems.push(problem(
            "verification_code",
            format!(
                "{:?} is not the code of this signature ({code})",
                certificate.verification_code
            ),
        ));
    }
    if !problems.is_empty() {
        return refuse(problems, Some(issuer.station));
    }
    CertificateVerdict {
        valid: true,
        summary: format!(
            "valid: {} hours for volunteer {} of {}, signed by station {} under the CA of county {county}",
            hours(certificate.total_hours_centi),
            certificate.volunteer_number,
            certificate.home_station,
            issuer.station
        ),
        problems: Vec::new(),
        issuer_station: Some(issuer.station),
        verification_code: code,
    }
}

fn summary_of(problems: &[CertificateProblem]) -> String {
    let changed: Vec<&str> = problems
        .iter()
        .filter(|p| p.reason.contains("since signing") || p.reason.contains("not covered"))
        .map(|p| p.field.as_str())
        .collect();
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!(
            "signature does not match the content (fields changed since signing: {})",
            changed.join(", ")
        ));
    }
    for p in problems {
        if !changed.contains(&p.field.as_str()) {
            parts.push(format!("{}: {}", p.field, p.reason));
        }
    }
    format!("NOT VALID: {}", parts.join("; "))
}

fn hours(centi: u64) -> String {
    format!("{}.{:02}", centi / 100, centi % 100)
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    // Bounded before decoding: the text comes from a file on disk.
    if text.len() > 1024 {
        return None;
    }
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests;
