"""The validator: syntax tree to checked nodes (RFC 5228 §2.6, §3.2, §8.2).

It checks that every command and test exists and has been required, that each takes the
arguments, tags and tests it was given, and that the script's certain actions stay within the
limits. Its output is what the interpreter runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from shared.sieve.errors import SieveError
from shared.sieve.limits import SieveLimits
from shared.sieve.registry import Registry, Spec
from shared.sieve.syntax import Argument, Command, Number, StringList, Tag, Test

_KIND_NAMES = {"string": "a string", "strings": "a string list", "number": "a number"}


@dataclass
class Node:
    """A checked command or test, its tagged values by tag name and its positionals."""

    spec: Spec
    line: int
    tags: dict[str, object] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)   # group -> the tag chosen
    positional: list[object] = field(default_factory=list)
    tests: list[Node] = field(default_factory=list)
    block: list[Node] | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Script:
    """A compiled script: what `evaluate` runs."""

    commands: list[Node]
    requires: frozenset[str]
    limits: SieveLimits


class Validator:
    def __init__(self, registry: Registry, limits: SieveLimits) -> None:
        self.registry = registry
        self.limits = limits
        self.requires: set[str] = set()

    def validate(self, commands: list[Command]) -> Script:
        body = self._requires(commands)
        nodes = self._block(body, top=True)
        self._check_certain_actions(nodes)
        return Script(nodes, frozenset(self.requires), self.limits)

    def has(self, capability: str) -> bool:
        return capability in self.requires

    def _requires(self, commands: list[Command]) -> list[Command]:
        """RFC 5228 §3.2: `require` only before any other command."""
        index = 0
        while index < len(commands) and commands[index].name == "require":
            command = commands[index]
            if command.tests or command.block is not None or len(command.arguments) != 1 \
                    or not isinstance(command.arguments[0], StringList):
                raise SieveError("'require' takes one string list of capabilities", command.line)
            for name in command.arguments[0].values:
                if name not in self.registry.capabilities:
                    raise SieveError(f"unsupported capability \"{name}\" in require",
                                     command.line)
                self.requires.add(name)
            index += 1
        return commands[index:]

    def _block(self, commands: list[Command], top: bool = False) -> list[Node]:
        nodes: list[Node] = []
        for command in commands:
            if command.name == "require":
                raise SieveError("'require' must come before every other command",
                                 command.line)
            spec = self.registry.commands.get(command.name)
            if spec is None:
                hint = " (it is a test)" if command.name in self.registry.tests else ""
                raise SieveError(f"unknown command '{command.name}'{hint}", command.line)
            if spec.chain == "continue":
                previous = nodes[-1].spec.chain if nodes else None
                if previous is None or nodes[-1].name == "else":
                    raise SieveError(f"'{command.name}' must follow 'if' or 'elsif'",
                                     command.line)
            nodes.append(self._node(spec, command))
        return nodes

    def _node(self, spec: Spec, source: Command | Test) -> Node:
        line = source.line
        self._check_capability(spec.capability, f"'{spec.name}'", line)
        node = Node(spec, line)
        self._arguments(node, source.arguments)
        self._tests(node, source)
        if isinstance(source, Command):
            if spec.block and source.block is None:
                raise SieveError(f"'{spec.name}' needs a block {{ ... }}", line)
            if not spec.block and source.block is not None:
                raise SieveError(f"'{spec.name}' takes no block; end it with ';'", line)
            if source.block is not None:
                node.block = self._block(source.block)
        if spec.validate is not None:
            spec.validate(node, self)
        for check in self.registry.validators:
            check(node, self)
        return node

    def _tests(self, node: Node, source: Command | Test) -> None:
        spec = node.spec
        count = len(source.tests)
        if spec.tests == "none" and count and not source.test_list:
            stray = source.tests[0]
            if isinstance(source, Command):
                raise SieveError(f"expected ';' after '{spec.name}', found '{stray.name}'",
                                 stray.line)
            raise SieveError(f"'{spec.name}' takes no test, but '{stray.name}' follows it",
                             stray.line)
        if spec.tests == "none" and (count or source.test_list):
            raise SieveError(f"'{spec.name}' takes no test", node.line)
        if spec.tests == "one" and (count != 1 or source.test_list):
            raise SieveError(f"'{spec.name}' needs exactly one test", node.line)
        if spec.tests == "list" and not source.test_list:
            raise SieveError(f"'{spec.name}' needs a test list ( ... )", node.line)
        for test in source.tests:
            test_spec = self.registry.tests.get(test.name)
            if test_spec is None:
                hint = " (it is a command)" if test.name in self.registry.commands else ""
                raise SieveError(f"unknown test '{test.name}'{hint}", test.line)
            node.tests.append(self._node(test_spec, test))

    def _check_capability(self, capability: str | None, what: str, line: int) -> None:
        if capability is not None and capability not in self.requires:
            raise SieveError(f"{what} needs require \"{capability}\"", line)

    def _arguments(self, node: Node, arguments: list[Argument]) -> None:
        spec = node.spec
        tags = self.registry.tags_of(spec)
        positionals: list[StringList | Number] = []
        index = 0
        while index < len(arguments):
            argument = arguments[index]
            index += 1
            if not isinstance(argument, Tag):
                positionals.append(argument)
                continue
            if positionals:
                raise SieveError(f"tag ':{argument.name}' must come before the positional "
                                 f"arguments of '{spec.name}'", argument.line)
            tag = tags.get(argument.name)
            if tag is None:
                raise SieveError(f"'{spec.name}' has no tag ':{argument.name}'", argument.line)
            self._check_capability(tag.capability, f"tag ':{argument.name}'", argument.line)
            if argument.name in node.tags:
                raise SieveError(f"tag ':{argument.name}' given twice", argument.line)
            if tag.group is not None:
                if tag.group in node.groups:
                    raise SieveError(f"':{argument.name}' and ':{node.groups[tag.group]}' "
                                     f"cannot both be given ({tag.group})", argument.line)
                node.groups[tag.group] = argument.name
            if tag.value is None:
                node.tags[argument.name] = True
                continue
            if index >= len(arguments):
                raise SieveError(f"tag ':{argument.name}' needs {_KIND_NAMES[tag.value]}",
                                 argument.line)
            node.tags[argument.name] = self._value(arguments[index], tag.value,
                                                   f"tag ':{argument.name}'")
            index += 1
        self._positionals(node, positionals)

    def _positionals(self, node: Node, given: list[StringList | Number]) -> None:
        spec = node.spec
        kinds = spec.positional
        if len(kinds) - spec.optional_leading <= len(given) < len(kinds):
            kinds = kinds[len(kinds) - len(given):]
        if len(given) != len(kinds):
            wanted = ", ".join(_KIND_NAMES[kind] for kind in spec.positional) or "nothing"
            raise SieveError(f"'{spec.name}' takes {wanted} after its tags; "
                             f"{len(given)} argument(s) given", node.line)
        for argument, kind in zip(given, kinds):
            node.positional.append(self._value(argument, kind, f"'{spec.name}'"))

    def _value(self, argument: Argument, kind: str, what: str) -> object:
        if kind == "number":
            if not isinstance(argument, Number):
                raise SieveError(f"{what} needs a number", argument.line)
            return argument.value
        if not isinstance(argument, StringList) or (kind == "string" and argument.bracketed):
            raise SieveError(f"{what} needs {_KIND_NAMES[kind]}", argument.line)
        values = tuple(self._string(value, argument.line) for value in argument.values)
        return values[0] if kind == "string" else values

    def _string(self, value: str, line: int) -> str:
        for capability, transform in self.registry.string_transforms.items():
            if capability in self.requires:
                value = transform(value, line)
        return value

    def _check_certain_actions(self, nodes: list[Node]) -> None:
        """Actions outside every condition always run: more than the limits allow is known
        now, not at delivery time."""
        actions = 0
        redirects: set[str] = set()
        for node in nodes:
            if node.name == "stop":
                return
            if not node.spec.action:
                continue
            actions += 1
            if actions > self.limits.max_actions:
                raise SieveError(f"more than {self.limits.max_actions} actions", node.line)
            if node.name == "redirect" and "${" not in str(node.positional[0]):
                redirects.add(str(node.positional[0]).lower())
                if len(redirects) > self.limits.max_redirects:
                    raise SieveError(f"more than {self.limits.max_redirects} redirects",
                                     node.line)

