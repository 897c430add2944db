"""The THREAD algorithms of RFC 5256 §3 on the store's thread columns.

Each message comes as a `ThreadMessage`: its number (sequence number or uid, as
the answer needs), its sent date, base subject (already in the collation's form,
server/mime/sort_keys.py), whether its subject marked a reply or forward, its own
Message-ID and its ancestors' (References, else In-Reply-To). Nothing here reads
a message: both algorithms run on those columns alone.

A thread is a `Node`: a message (number) or a dummy (None) with children. The
writer turns a list of root nodes into `* THREAD (...)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class ThreadMessage(NamedTuple):
    number: int
    sent: int
    subject: str
    reply: bool
    message_id: str | None
    parents: tuple[str, ...]


@dataclass(eq=False, slots=True)
class Node:
    message: ThreadMessage | None = None
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = field(default=None, repr=False)

    def sort_key(self) -> tuple[int, int]:
        """Sent date, then number (RFC 5256 §3: ties by sequence number); a dummy has its first child's."""
        node = self
        while node.message is None:
            if not node.children:
                return (0, 0)
            node = node.children[0]
        return (node.message.sent, node.message.number)

    def first_message(self) -> ThreadMessage | None:
        node = self
        while node.message is None and node.children:
            node = node.children[0]
        return node.message


def ordered_subject(messages: list[ThreadMessage]) -> list[Node]:
    """ORDEREDSUBJECT: by base subject then sent date; in each subject group, the first
    message is the parent of every later one (RFC 5256 §3)."""
    roots: list[Node] = []
    current: Node | None = None
    for m in sorted(messages, key=lambda m: (m.subject, m.sent, m.number)):
        if current is not None and current.message is not None and current.message.subject == m.subject:
            current.children.append(Node(m, parent=current))
        else:
            current = Node(m)
            roots.append(current)
    roots.sort(key=Node.sort_key)
    return roots


def _reaches(node: Node, target: Node) -> bool:
    """Whether `target` is `node` or one of its ancestors."""
    while node is not None:
        if node is target:
            return True
        node = node.parent  # type: ignore[assignment]
    return False


def _link(parent: Node, child: Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def references(messages: list[ThreadMessage]) -> list[Node]:
    """REFERENCES (RFC 5256 §3): the jwz algorithm, then threads of one base subject merged."""
    by_id: dict[str, Node] = {}
    containers: list[Node] = []

    def container(message_id: str | None) -> Node:
        node = by_id.get(message_id) if message_id else None
        if node is None:
            node = Node()
            containers.append(node)
            if message_id:
                by_id[message_id] = node
        return node

    for m in sorted(messages, key=lambda m: m.number):
        # (1)(A): link the references one to the next, where neither makes a loop
        # and the child has no parent yet.
        previous: Node | None = None
        for ref in m.parents:
            node = by_id.get(ref) or container(ref)
            if previous is not None and node.parent is None and node is not previous and (
                    not node.children or not _reaches(previous, node)):  # a leaf is no one's ancestor
                _link(previous, node)
            previous = node
        # (1)(B): the message's own container; a missing or repeated Message-ID gets a fresh one.
        own = container(m.message_id)
        if own.message is not None:
            own = container(None)
        own.message = m
        # (1)(C): the last reference is its parent, replacing any parent it had.
        if own.parent is not None:
            own.parent.children.remove(own)
            own.parent = None
        if previous is not None and not _reaches(previous, own):
            _link(previous, own)
    roots = [n for n in containers if n.parent is None]
    roots = _prune(roots)                                     # (3)
    for root in roots:
        _sort_tree(root)                                      # (4)
    roots.sort(key=Node.sort_key)
    roots = _merge_subjects(roots)                            # (5)
    for root in roots:
        _sort_tree(root)                                      # (6)
    roots.sort(key=Node.sort_key)
    return roots


def _prune(roots: list[Node]) -> list[Node]:
    """(3): drop empty dummies; a dummy's children take its place, at the root only when it has
    one. Children before their parents, without recursion: a chain can be thousands deep."""
    order: list[Node] = []
    pending = list(roots)
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(node.children)
    for node in reversed(order):
        kept: list[Node] = []
        for child in node.children:
            if child.message is not None:
                kept.append(child)
            else:
                kept.extend(child.children)
        for child in kept:
            child.parent = node
        node.children = kept
    out: list[Node] = []
    for root in roots:
        if root.message is not None or len(root.children) > 1:
            out.append(root)
        elif root.children:
            child = root.children[0]
            child.parent = None
            out.append(child)
    return out


def _sort_tree(root: Node) -> None:
    """Every sibling list under `root` by sent date, deepest first so that a dummy's key is right."""
    pending = [root]
    order: list[Node] = []
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(node.children)
    for node in reversed(order):
        if len(node.children) > 1:
            node.children.sort(key=Node.sort_key)


def _merge_subjects(roots: list[Node]) -> list[Node]:
    """(5): root threads whose base subjects are equal become one thread."""
    table: dict[str, Node] = {}
    for node in roots:                                        # (5)(B)
        first = node.first_message()
        if first is None or not first.subject:
            continue
        held = table.get(first.subject)
        if held is None or (node.message is None and held.message is not None) or (
                held.message is not None and node.message is not None
                and held.message.reply and not node.message.reply):
            table[first.subject] = node
    out: list[Node] = []
    for node in roots:                                        # (5)(C)
        if node.parent is not None:
            continue  # merged under an earlier root already
        first = node.first_message()
        held = table.get(first.subject) if first is not None and first.subject else None
        if held is None or held is node:
            out.append(node)
            continue
        subject = first.subject  # type: ignore[union-attr]
        if held.message is None and node.message is None:     # (i)
            for child in list(node.children):
                _link(held, child)
        elif held.message is None:                            # (ii)
            _link(held, node)
        elif node.message is None:                            # (ii)
            _link(node, held)
            table[subject] = node
            out.append(node)
        elif not held.message.reply and node.message.reply:   # (iii)
            _link(held, node)
        else:                                                 # (iv)
            dummy = Node()
            _link(dummy, held)
            _link(dummy, node)
            table[subject] = dummy
            out.append(dummy)
    return [n for n in out if n.parent is None]
