"""A throwaway OpenLDAP slapd on loopback, with its own slapd.conf, TLS and data in a temp dir.

Two trees: `dc=example,dc=org` shaped like an OpenLDAP directory (inetOrgPerson,
entryUUID, groupOfNames) and `dc=corp,dc=example` shaped like Active Directory
(user/group with sAMAccountName, userPrincipalName, binary objectGUID and memberOf,
under Microsoft's OIDs, with the case-insensitive matching AD applies).
Changes go through the real ldap-utils (ldapadd, ldapmodify, ldapdelete).
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import uuid

from certificates import make_ca_and_server_cert
from debian import command, ensure_packages
from harness import ROOT, free_port, stop_process, wait_for_port

SCHEMA_DIR = "/etc/ldap/schema"
SUFFIX = "dc=example,dc=org"
AD_SUFFIX = "dc=corp,dc=example"
ROOTPW = "root-secret"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PW = "reader-secret"
AD_READER_DN = f"cn=svc-groupware,cn=Users,{AD_SUFFIX}"


def ensure_slapd() -> None:
    """Debian's slapd and ldap-utils, installed when missing."""
    ensure_packages({"slapd": lambda: bool(shutil.which("slapd")) or os.path.exists("/usr/sbin/slapd"),
                     "ldap-utils": command("ldapmodify")})


AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.2.840.113556.1.4.750 NAME 'groupType'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ objectGUID $ memberOf $ mail $ displayName $
        userAccountControl $ groupwareEnabledFeatures $ groupwareDisabledFeatures ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
  MUST cn MAY ( member $ groupType $ objectGUID $ sAMAccountName $ description ) )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn )
"""


def _database(suffix: str, directory: str) -> str:
    return f"""
database mdb
maxsize 67108864
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {ROOTPW}
directory {directory}
index objectClass eq
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
"""


def organization(suffix: str, name: str) -> str:
    """The LDIF of a tree's root entry."""
    return f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: {name}\ndc: {name.lower()}\n"


def openldap_ldif() -> str:
    people = f"ou=people,{SUFFIX}"
    entries = [organization(SUFFIX, "Example"), f"""dn: {READER_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: {READER_PW}
""", f"""dn: {people}
objectClass: organizationalUnit
ou: people
""", f"""dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups
"""]
    for uid, name in (("alice", "Alice Liddell"), ("bob", "Bob Builder"), ("carol", "Carol Danvers"),
                      ("dave", "Dave Lister"), ("star", "Star Name"), ("nomail", "No Mail")):
        entries.append(f"""dn: uid={uid},{people}
objectClass: inetOrgPerson
objectClass: groupwareUser
uid: {uid}
cn: {name}
sn: {name.split()[-1]}
mail: {uid}@example.org
userPassword: {uid}-pw
""")
    entries.append(f"""dn: cn=mail-users,ou=groups,{SUFFIX}
objectClass: groupOfNames
cn: mail-users
member: uid=alice,{people}
member: uid=bob,{people}
""")
    return "\n".join(entries)


def ad_ldif() -> str:
    users = f"cn=Users,{AD_SUFFIX}"
    entries = [organization(AD_SUFFIX, "Corp"), f"""dn: {users}
objectClass: container
cn: Users
""", f"""dn: {AD_READER_DN}
objectClass: user
cn: svc-groupware
sn: groupware
sAMAccountName: svc-groupware
objectGUID:: {base64.b64encode(uuid.uuid4().bytes).decode()}
userPassword: {READER_PW}
"""]
    for sam, name, groups in (("jdoe", "John Doe", ["Mail Users"]), ("asmith", "Anna Smith", ["Mail Users"]),
                              ("outsider", "Out Sider", [])):
        member_of = "".join(f"memberOf: cn={g},{users}\n" for g in groups)
        entries.append(f"""dn: cn={name},{users}
objectClass: user
cn: {name}
sn: {name.split()[-1]}
displayName: {name}
sAMAccountName: {sam}
userPrincipalName: {sam}@corp.example
mail: {sam}@corp.example
objectGUID:: {base64.b64encode(uuid.uuid4().bytes).decode()}
{member_of}userAccountControl: 512
userPassword: {sam}-pw
""")
    entries.append(f"""dn: cn=Mail Users,{users}
objectClass: group
cn: Mail Users
groupType: -2147483646
member: cn=John Doe,{users}
member: cn=Anna Smith,{users}
""")
    return "\n".join(entries)


class Slapd:
    """One slapd process (plain ldap:// and ldaps:// on loopback), restartable on the same ports."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.port, self.tls_port = free_port(), free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_uri = f"ldaps://127.0.0.1:{self.tls_port}"
        # The same TLS listener on an address the certificate does not name.
        self.wrong_name_uri = f"ldaps://127.0.0.2:{self.tls_port}"
        self.log_path = os.path.join(directory, "slapd.log")
        self.proc: subprocess.Popen | None = None
        self.ca, self.cert, self.key = make_ca_and_server_cert(directory)
        ad_schema = os.path.join(directory, "ad.schema")
        with open(ad_schema, "w") as fp:
            fp.write(AD_SCHEMA)
        conf = [f"include {SCHEMA_DIR}/{name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")]
        conf.append(f"include {os.path.join(ROOT, 'conf', 'ldap', 'groupware.schema')}")
        conf.append(f"include {ad_schema}")
        conf += [f"pidfile {directory}/slapd.pid", f"argsfile {directory}/slapd.args",
                 "modulepath /usr/lib/ldap", "moduleload back_mdb",
                 f"TLSCACertificateFile {self.ca}", f"TLSCertificateFile {self.cert}",
                 f"TLSCertificateKeyFile {self.key}", "sizelimit unlimited"]
        for suffix, name in ((SUFFIX, "openldap"), (AD_SUFFIX, "ad")):
            os.makedirs(os.path.join(directory, name))
            conf.append(_database(suffix, os.path.join(directory, name)))
        self.conf = os.path.join(directory, "slapd.conf")
        with open(self.conf, "w") as fp:
            fp.write("\n".join(conf) + "\n")

    def start(self) -> "Slapd":
        log = open(self.log_path, "ab")
        # -d stats: stay in the foreground and log every operation (BIND, SRCH filters) for the tests.
        self.proc = subprocess.Popen(["slapd", "-f", self.conf, "-h", f"{self.uri}/ {self.ldaps_uri}/ {self.wrong_name_uri}/",
                                      "-d", "stats"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            wait_for_port(self.port, alive=lambda: self.proc.poll() is None)
        except (OSError, RuntimeError):
            self.stop()
            raise RuntimeError("slapd did not start: " + self.log_text()[-3000:]) from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test may have left it stopped (SIGSTOP)
        stop_process(self.proc, grace=20)
        self.proc = None

    def load(self) -> None:
        self.ldapadd(SUFFIX, openldap_ldif())
        self.ldapadd(AD_SUFFIX, ad_ldif())

    def _tool(self, tool: str, suffix: str, ldif: str, *extra: str) -> str:
        result = subprocess.run([tool, "-x", "-H", self.uri, "-D", f"cn=admin,{suffix}", "-w", ROOTPW, *extra],
                                input=ldif, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr}")
        return result.stdout

    def ldapadd(self, suffix: str, ldif: str) -> None:
        self._tool("ldapadd", suffix, ldif)

    def ldapmodify(self, suffix: str, ldif: str) -> None:
        self._tool("ldapmodify", suffix, ldif)

    def ldapdelete(self, suffix: str, dn: str) -> None:
        self._tool("ldapdelete", suffix, "", dn)

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fp:
            return fp.read()
