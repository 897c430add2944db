"""The Apple configuration profile (.mobileconfig) for iPhone, iPad and Mac: one mail
account (IMAP, SMTP submission), one CalDAV and one CardDAV account, per Apple's Configuration
Profile Reference (`com.apple.mail.managed`, `com.apple.caldav.account`, `com.apple.carddav.account`).

The profile carries no password: the device asks for it when the profile is installed.
It may be signed (`web_sign_profile`) with the server's certificate and key, as a CMS
SignedData (PKCS #7) of the plist, so that the device shows the issuer as verified.
"""
from __future__ import annotations

import plistlib
import uuid

from gateways.web.settings import ClientSettings

CONTENT_TYPE = "application/x-apple-aspen-config"
# UUIDs derived from these names stay the same for one user on one server, so that
# installing a newer profile replaces the older one instead of adding a second account.
_NAMESPACE = uuid.UUID("8c3cbf46-5a0a-4f43-9c3e-3b2f8d3f4a51")


def identifier(settings: ClientSettings) -> str:
    """The profile's reverse-DNS identifier."""
    return ".".join(reversed(settings.hostname.split("."))) + ".groupware"


def profile(settings: ClientSettings, login: str, address: str, full_name: str = "",
            organization: str = "") -> dict:
    base = identifier(settings)
    ident = f"{base}.{login}"

    def uid(kind: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{ident}/{kind}")).upper()

    payloads = []
    if settings.imap is not None:
        mail = {
            "PayloadType": "com.apple.mail.managed", "PayloadVersion": 1,
            "PayloadIdentifier": f"{ident}.mail", "PayloadUUID": uid("mail"),
            "PayloadDisplayName": f"Mail ({address})",
            "EmailAccountDescription": address, "EmailAccountName": full_name or login,
            "EmailAccountType": "EmailTypeIMAP", "EmailAddress": address,
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "IncomingMailServerHostName": settings.imap.host,
            "IncomingMailServerPortNumber": settings.imap.port,
            "IncomingMailServerUseSSL": settings.imap.security != "plain",
            "IncomingMailServerUsername": login,
        }
        if settings.smtp is not None:
            mail.update({
                "OutgoingMailServerAuthentication": "EmailAuthPassword",
                "OutgoingMailServerHostName": settings.smtp.host,
                "OutgoingMailServerPortNumber": settings.smtp.port,
                "OutgoingMailServerUseSSL": settings.smtp.security != "plain",
                "OutgoingMailServerUsername": login,
                "OutgoingPasswordSameAsIncomingPassword": True,
            })
        payloads.append(mail)
    if settings.http is not None:
        payloads.append({
            "PayloadType": "com.apple.caldav.account", "PayloadVersion": 1,
            "PayloadIdentifier": f"{ident}.caldav", "PayloadUUID": uid("caldav"),
            "PayloadDisplayName": f"Calendar ({address})",
            "CalDAVAccountDescription": address,
            "CalDAVHostName": settings.http.host, "CalDAVPort": settings.http.port,
            "CalDAVUseSSL": settings.http.ssl, "CalDAVUsername": login,
            "CalDAVPrincipalURL": settings.caldav_url(login),
        })
        payloads.append({
            "PayloadType": "com.apple.carddav.account", "PayloadVersion": 1,
            "PayloadIdentifier": f"{ident}.carddav", "PayloadUUID": uid("carddav"),
            "PayloadDisplayName": f"Contacts ({address})",
            "CardDAVAccountDescription": address,
            "CardDAVHostName": settings.http.host, "CardDAVPort": settings.http.port,
            "CardDAVUseSSL": settings.http.ssl, "CardDAVUsername": login,
            "CardDAVPrincipalURL": settings.carddav_url(login),
        })
    body = {
        "PayloadType": "Configuration", "PayloadVersion": 1,
        "PayloadIdentifier": ident, "PayloadUUID": uid("profile"),
        "PayloadDisplayName": f"{organization or settings.hostname}: {address}",
        "PayloadDescription": f"Mail, calendar and contacts of {address} on {settings.hostname}",
        "PayloadContent": payloads,
    }
    if organization:
        body["PayloadOrganization"] = organization
    return body


def render(settings: ClientSettings, login: str, address: str, full_name: str = "",
           organization: str = "", signer: "ProfileSigner | None" = None) -> bytes:
    data = plistlib.dumps(profile(settings, login, address, full_name, organization), fmt=plistlib.FMT_XML)
    return signer.sign(data) if signer is not None else data


class ProfileSigner:
    """Signs profiles with a certificate (and its chain) and key in PEM files."""

    def __init__(self, certificate_file: str, key_file: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        with open(certificate_file, "rb") as fp:
            chain = x509.load_pem_x509_certificates(fp.read())
        with open(key_file, "rb") as fp:
            self.key = serialization.load_pem_private_key(fp.read(), password=None)
        self.certificate, self.chain = chain[0], chain[1:]

    def sign(self, data: bytes) -> bytes:
        """DER CMS SignedData with `data` inside (not detached), as iOS and macOS read it."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.serialization import pkcs7
        builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(self.certificate, self.key, hashes.SHA256())
        for extra in self.chain:
            builder = builder.add_certificate(extra)
        return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
