"""The page's words in English and German, chosen by the browser's Accept-Language
(RFC 9110 section 12.5.4: the highest q-value among the languages offered wins; English
when none is named)."""
from __future__ import annotations

LANGUAGES = ("en", "de")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Set up your devices",
        "login_title": "Log in",
        "login_intro": "Log in with your account to see how to set up your phone, tablet and computer.",
        "username": "User name",
        "password": "Password",
        "login": "Log in",
        "logout": "Log out",
        "bad_login": "The user name or password is not right.",
        "banned": "Too many failed logins from your address. Try again later.",
        "unavailable": "The server cannot check your login right now. Try again in a few minutes.",
        "https_only": "Log in over an encrypted connection (https).",
        "expired": "The form had expired. Please try again.",
        "hello": "Your address: {address}. This server: {host}.",
        "settings_intro": "Choose your device below. Your password is the one you logged in with.",
        "thunderbird": "Thunderbird",
        "thunderbird_steps": "In Thunderbird choose “New” → “Existing Email Account”, type your name, "
                             "your address {address} and your password, and click “Continue”. "
                             "Thunderbird finds every setting by itself. Then click “Done”.",
        "apple": "iPhone, iPad and Mac",
        "apple_steps": "Download the profile and open it: on iPhone and iPad go to Settings → "
                       "“Profile Downloaded” → Install; on a Mac open System Settings → Privacy & "
                       "Security → Profiles. Enter your password when asked.",
        "download_profile": "Download the profile",
        "qr_intro": "Or scan this code with the camera of your iPhone or iPad. The link in it "
                    "works once, for {minutes} minutes, and carries no password.",
        "qr_alt": "QR code with a one-time link to your profile",
        "android": "Android",
        "android_calendar": "Calendar: install DAVx⁵, tap “+”, choose “Login with URL and user name” "
                            "and enter:",
        "android_mail": "Mail: in FairEmail or K-9 Mail add an account, choose manual setup and enter:",
        "outlook": "Outlook",
        "outlook_steps": "In Outlook choose File → Add Account → Advanced options → “Let me set up "
                         "my account manually” → IMAP, and enter:",
        "outlook_calendar": "For the calendar, Outlook needs a CalDAV add-in (e.g. CalDav Synchronizer) "
                            "with this URL:",
        "incoming": "Incoming mail (IMAP)",
        "incoming_pop3": "Incoming mail (POP3)",
        "outgoing": "Outgoing mail (SMTP)",
        "server": "Server",
        "port": "Port",
        "security": "Security",
        "caldav_url": "CalDAV URL",
        "carddav_url": "CardDAV URL",
        "contacts": "Contacts",
        "contacts_intro": "Address book apps (DAVx5, iPhone and Mac Contacts, Thunderbird) use this "
                          "address with your user name and password; DAVx5 and the iPhone also find it "
                          "from the server name alone.",
        "base_url": "Base URL",
        "sec_SSL": "SSL/TLS",
        "sec_STARTTLS": "STARTTLS",
        "sec_plain": "none",
        "calendars": "Your calendars",
        "calendars_intro": "Calendar apps use these addresses with your user name and password. "
                           "A secret feed link lets anyone who has it read (not change) one calendar, "
                           "without a password: share it only with people you trust, and revoke it "
                           "to make it stop working.",
        "no_calendars": "You have no calendars yet.",
        "calendar": "Calendar",
        "address": "Address",
        "feed": "Secret feed link",
        "not_published": "not published",
        "publish": "Publish a feed link",
        "republish": "New feed link",
        "revoke": "Revoke the feed link",
        "published": "The calendar {name} is published.",
        "revoked": "The feed link of {name} was revoked.",
        "password_title": "Change your password",
        "old_password": "Current password",
        "new_password": "New password",
        "new_password_again": "New password again",
        "change_password": "Change password",
        "password_changed": "Your password was changed. Enter the new one on every device.",
        "password_mismatch": "The two new passwords differ.",
        "password_wrong": "The current password is not right.",
        "password_refused": "This password cannot be used.",
        "password_directory": "Your password is kept in the company directory; change it there.",
        "error": "Something went wrong. Try again later.",
        "skip": "Skip to the settings",
    },
    "de": {
        "title": "Geräte einrichten",
        "login_title": "Anmelden",
        "login_intro": "Melden Sie sich mit Ihrem Konto an, um zu sehen, wie Sie Telefon, Tablet und "
                       "Computer einrichten.",
        "username": "Benutzername",
        "password": "Passwort",
        "login": "Anmelden",
        "logout": "Abmelden",
        "bad_login": "Benutzername oder Passwort ist nicht richtig.",
        "banned": "Zu viele fehlgeschlagene Anmeldungen von Ihrer Adresse. Versuchen Sie es später erneut.",
        "unavailable": "Der Server kann Ihre Anmeldung gerade nicht prüfen. Versuchen Sie es in ein paar "
                       "Minuten erneut.",
        "https_only": "Melden Sie sich über eine verschlüsselte Verbindung (https) an.",
        "expired": "Das Formular war abgelaufen. Bitte versuchen Sie es erneut.",
        "hello": "Ihre Adresse: {address}. Dieser Server: {host}.",
        "settings_intro": "Wählen Sie unten Ihr Gerät. Ihr Passwort ist das, mit dem Sie sich angemeldet haben.",
        "thunderbird": "Thunderbird",
        "thunderbird_steps": "Wählen Sie in Thunderbird „Neu“ → „Bestehendes E-Mail-Konto“, geben Sie "
                             "Ihren Namen, Ihre Adresse {address} und Ihr Passwort ein und klicken Sie auf "
                             "„Weiter“. Thunderbird findet alle Einstellungen selbst. Klicken Sie dann auf "
                             "„Fertig“.",
        "apple": "iPhone, iPad und Mac",
        "apple_steps": "Laden Sie das Profil herunter und öffnen Sie es: auf iPhone und iPad unter "
                       "Einstellungen → „Profil geladen“ → Installieren; auf dem Mac unter "
                       "Systemeinstellungen → Datenschutz & Sicherheit → Profile. Geben Sie Ihr "
                       "Passwort ein, wenn Sie danach gefragt werden.",
        "download_profile": "Profil herunterladen",
        "qr_intro": "Oder scannen Sie diesen Code mit der Kamera Ihres iPhones oder iPads. Der Link "
                    "darin funktioniert einmal, {minutes} Minuten lang, und enthält kein Passwort.",
        "qr_alt": "QR-Code mit einem Einmal-Link zu Ihrem Profil",
        "android": "Android",
        "android_calendar": "Kalender: Installieren Sie DAVx⁵, tippen Sie auf „+“, wählen Sie „Mit URL "
                            "und Benutzername anmelden“ und geben Sie ein:",
        "android_mail": "E-Mail: Fügen Sie in FairEmail oder K-9 Mail ein Konto hinzu, wählen Sie die "
                        "manuelle Einrichtung und geben Sie ein:",
        "outlook": "Outlook",
        "outlook_steps": "Wählen Sie in Outlook Datei → Konto hinzufügen → Erweiterte Optionen → „Ich "
                         "möchte mein Konto manuell einrichten“ → IMAP und geben Sie ein:",
        "outlook_calendar": "Für den Kalender braucht Outlook ein CalDAV-Add-in (z. B. CalDav "
                            "Synchronizer) mit dieser URL:",
        "incoming": "Posteingang (IMAP)",
        "incoming_pop3": "Posteingang (POP3)",
        "outgoing": "Postausgang (SMTP)",
        "server": "Server",
        "port": "Port",
        "security": "Sicherheit",
        "caldav_url": "CalDAV-URL",
        "carddav_url": "CardDAV-URL",
        "contacts": "Kontakte",
        "contacts_intro": "Adressbuch-Apps (DAVx5, Kontakte auf iPhone und Mac, Thunderbird) verwenden "
                          "diese Adresse mit Ihrem Benutzernamen und Passwort; DAVx5 und das iPhone finden "
                          "sie auch allein über den Servernamen.",
        "base_url": "Basis-URL",
        "sec_SSL": "SSL/TLS",
        "sec_STARTTLS": "STARTTLS",
        "sec_plain": "keine",
        "calendars": "Ihre Kalender",
        "calendars_intro": "Kalender-Apps verwenden diese Adressen mit Ihrem Benutzernamen und Passwort. "
                           "Ein geheimer Feed-Link lässt jeden, der ihn hat, einen Kalender lesen (nicht "
                           "ändern), ohne Passwort: Geben Sie ihn nur Menschen, denen Sie vertrauen, und "
                           "widerrufen Sie ihn, damit er nicht mehr funktioniert.",
        "no_calendars": "Sie haben noch keine Kalender.",
        "calendar": "Kalender",
        "address": "Adresse",
        "feed": "Geheimer Feed-Link",
        "not_published": "nicht veröffentlicht",
        "publish": "Feed-Link veröffentlichen",
        "republish": "Neuer Feed-Link",
        "revoke": "Feed-Link widerrufen",
        "published": "Der Kalender {name} ist veröffentlicht.",
        "revoked": "Der Feed-Link von {name} wurde widerrufen.",
        "password_title": "Passwort ändern",
        "old_password": "Aktuelles Passwort",
        "new_password": "Neues Passwort",
        "new_password_again": "Neues Passwort wiederholen",
        "change_password": "Passwort ändern",
        "password_changed": "Ihr Passwort wurde geändert. Geben Sie das neue auf jedem Gerät ein.",
        "password_mismatch": "Die beiden neuen Passwörter sind verschieden.",
        "password_wrong": "Das aktuelle Passwort ist nicht richtig.",
        "password_refused": "Dieses Passwort kann nicht verwendet werden.",
        "password_directory": "Ihr Passwort wird im Firmenverzeichnis verwaltet; ändern Sie es dort.",
        "error": "Etwas ist schiefgegangen. Versuchen Sie es später erneut.",
        "skip": "Zu den Einstellungen springen",
    },
}


def negotiate(accept_language: str | None) -> str:
    """The language of LANGUAGES the header prefers most; English without a match."""
    best, best_q = "en", 0.0
    for position, item in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
        elif tag == "*" and q > best_q:
            best, best_q = "en", q
    return best


class Texts:
    """One language's words; `t("key", name=...)` formats the text."""

    def __init__(self, language: str) -> None:
        self.language = language if language in TEXTS else "en"
        self._texts = TEXTS[self.language]

    def __call__(self, key: str, **values: str) -> str:
        text = self._texts.get(key) or TEXTS["en"][key]
        return text.format(**values) if values else text
