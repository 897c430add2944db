"""The THREAD algorithms of RFC 5256 §3 on the store's thread columns.

The messages come as `ThreadColumns`, one list per column and one entry per
message: its number (sequence number or uid, as the answer needs), its sent date,
base subject (already in the collation's form, server/mime/sort_keys.py), whether
its subject marked a reply or forward, its own Message-ID and its ancestors'
(References, else In-Reply-To) as the store keeps them, space-separated. Nothing
here reads a message: both algorithms run on those columns alone.

The answer is a `Forest` of containers numbered 0, 1, ...: parallel lists of ints,
not an object per message, so that threading 100,000 messages is a few passes of
list indexing. A container holds a message (its index in the columns) or is a
dummy (NO_MESSAGE).
"""
from __future__ import annotations

from typing import NamedTuple

# A container's sort key is sent date and number in one int (RFC 5256 §3: ties by
# sequence number), numbers being below 2**32.
_NUMBER_BITS = 32
NO_PARENT = -1
NO_MESSAGE = -1


class ThreadColumns(NamedTuple):
    numbers: list[int]
    sent: list[int]
    subjects: list[str]
    replies: list[bool]
    message_ids: list[str]  # "" without one
    parents: list[str]      # ancestors' ids, oldest first, space-separated


class Forest(NamedTuple):
    """`roots` in answer order; `children[c]` in answer order; `numbers[c]` the
    message's number, 0 for a dummy."""
    roots: list[int]
    children: list[list[int]]
    numbers: list[int]


def ordered_subject(columns: ThreadColumns) -> Forest:
    """ORDEREDSUBJECT: by base subject then sent date; in each subject group, the first
    message is the parent of every later one (RFC 5256 §3)."""
    keys = _message_keys(columns)
    subjects = columns.subjects
    children: list[list[int]] = [[] for _ in keys]
    roots: list[int] = []
    current, current_subject = NO_PARENT, None
    for i in sorted(range(len(keys)), key=lambda i: (subjects[i], keys[i])):
        if current != NO_PARENT and subjects[i] == current_subject:
            children[current].append(i)
        else:
            current, current_subject = i, subjects[i]
            roots.append(i)
    roots.sort(key=keys.__getitem__)
    return Forest(roots, children, list(columns.numbers))


def _message_keys(columns: ThreadColumns) -> list[int]:
    return [(sent << _NUMBER_BITS) + number for sent, number in zip(columns.sent, columns.numbers)]


def references(columns: ThreadColumns) -> Forest:
    """REFERENCES (RFC 5256 §3): the jwz algorithm, then threads of one base subject merged."""
    parent: list[int] = []        # container -> its parent container
    message: list[int] = []       # container -> its message's index in `columns`
    child_count: list[int] = []
    by_id: dict[str, int] = {}

    def new_container() -> int:
        parent.append(NO_PARENT)
        message.append(NO_MESSAGE)
        child_count.append(0)
        return len(parent) - 1

    def reaches(node: int, target: int) -> bool:
        """Whether `target` is `node` or one of its ancestors."""
        while node != NO_PARENT:
            if node == target:
                return True
            node = parent[node]
        return False

    message_ids, all_parents = columns.message_ids, columns.parents
    for i in sorted(range(len(message_ids)), key=columns.numbers.__getitem__):
        # (1)(A): link the references one to the next, where neither makes a loop
        # and the child has no parent yet.
        previous = NO_PARENT
        if all_parents[i]:
            for ref in all_parents[i].split():
                node = by_id.get(ref)
                if node is None:
                    node = by_id[ref] = new_container()
                    if previous != NO_PARENT:  # a new container is a leaf: no loop
                        parent[node] = previous
                        child_count[previous] += 1
                elif previous != NO_PARENT and parent[node] == NO_PARENT and node != previous and (
                        not child_count[node] or not reaches(previous, node)):  # a leaf is no one's ancestor
                    parent[node] = previous
                    child_count[previous] += 1
                previous = node
        # (1)(B): the message's own container; a missing or repeated Message-ID gets a fresh one.
        message_id = message_ids[i]
        own = by_id.get(message_id) if message_id else None
        if own is None:
            own = new_container()
            if message_id:
                by_id[message_id] = own
        elif message[own] != NO_MESSAGE:
            own = new_container()
        message[own] = i
        # (1)(C): the last reference is its parent, replacing any parent it had.
        if parent[own] != NO_PARENT:
            child_count[parent[own]] -= 1
            parent[own] = NO_PARENT
        if previous != NO_PARENT and previous != own and (not child_count[own] or not reaches(previous, own)):
            parent[own] = previous
            child_count[previous] += 1
    message_keys = _message_keys(columns)
    keys = [0 if m == NO_MESSAGE else message_keys[m] for m in message]
    roots, children = _prune(parent, message, keys)                        # (3), (4)
    roots = _merge_subjects(roots, children, message, keys, columns)       # (5), (6)
    numbers = columns.numbers
    return Forest(roots, children, [0 if m == NO_MESSAGE else numbers[m] for m in message])


def _prune(parent: list[int], message: list[int], keys: list[int]) -> tuple[list[int], list[list[int]]]:
    """(3): drop empty dummies; a dummy's children take its place, at the root only when
    it has one. So every message hangs under its nearest ancestor with a message, or
    else under its root. (4): siblings by sent date; a root dummy's key its first child's."""
    count = len(parent)
    anchor = [NO_PARENT] * count  # self or nearest ancestor that holds a message or is a root
    for c in range(count):
        path = []
        node = c
        while anchor[node] == NO_PARENT:
            if message[node] != NO_MESSAGE or parent[node] == NO_PARENT:
                anchor[node] = node
                break
            path.append(node)
            node = parent[node]
        for walked in path:
            anchor[walked] = anchor[node]
    children: list[list[int]] = [[] for _ in range(count)]
    candidates: list[int] = []
    for c, up in enumerate(parent):
        if up == NO_PARENT:
            candidates.append(c)
        elif message[c] != NO_MESSAGE:
            children[anchor[up]].append(c)
    for kids in children:
        if len(kids) > 1:
            kids.sort(key=keys.__getitem__)
    roots: list[int] = []
    for root in candidates:
        kids = children[root]
        if message[root] != NO_MESSAGE:
            roots.append(root)
        elif len(kids) > 1:
            keys[root] = keys[kids[0]]
            roots.append(root)
        elif kids:
            roots.append(kids[0])
            children[root] = []
    roots.sort(key=keys.__getitem__)
    return roots, children


def _merge_subjects(roots: list[int], children: list[list[int]], message: list[int], keys: list[int],
                    columns: ThreadColumns) -> list[int]:
    """(5): root threads whose base subjects are equal become one thread, (6) sorted again.
    New dummies are added to `children`, `message` and `keys`; the new roots are returned."""
    subjects, replies = columns.subjects, columns.replies
    linked = [False] * len(message)
    touched: set[int] = set()

    def link(up: int, node: int) -> None:
        linked[node] = True
        children[up].append(node)
        touched.add(up)

    def subject_of(node: int) -> str:
        m = message[node]
        return subjects[m if m != NO_MESSAGE else message[children[node][0]]]

    table: dict[str, int] = {}
    for node in roots:                                        # (5)(B)
        subject = subject_of(node)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (message[node] == NO_MESSAGE and message[held] != NO_MESSAGE) or (
                message[held] != NO_MESSAGE and message[node] != NO_MESSAGE
                and replies[message[held]] and not replies[message[node]]):
            table[subject] = node
    out: list[int] = []
    for node in roots:                                        # (5)(C)
        if linked[node]:
            continue  # merged under an earlier root already
        subject = subject_of(node)
        held = table.get(subject) if subject else None
        if held is None or held == node:
            out.append(node)
            continue
        held_message, node_message = message[held], message[node]
        if held_message == NO_MESSAGE and node_message == NO_MESSAGE:   # (i)
            children[held].extend(children[node])
            children[node] = []
            touched.add(held)
        elif held_message == NO_MESSAGE:                      # (ii)
            link(held, node)
        elif node_message == NO_MESSAGE:                      # (ii)
            link(node, held)
            table[subject] = node
            out.append(node)
        elif not replies[held_message] and replies[node_message]:   # (iii)
            link(held, node)
        else:                                                 # (iv)
            dummy = len(message)
            message.append(NO_MESSAGE)
            keys.append(0)
            children.append([])
            linked.append(False)
            link(dummy, held)
            link(dummy, node)
            table[subject] = dummy
            out.append(dummy)
    for node in touched:                                      # (6)
        kids = children[node]
        kids.sort(key=keys.__getitem__)
        if message[node] == NO_MESSAGE:
            keys[node] = keys[kids[0]]
    out = [n for n in out if not linked[n]]
    out.sort(key=keys.__getitem__)
    return out
