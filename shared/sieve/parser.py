"""Recursive-descent parser: tokens to a syntax tree (RFC 5228 §8.2).

It knows the grammar only; which commands exist and what they take is the validator's job.
Nesting is bounded while parsing, so a hostile script cannot exhaust the Python stack.
"""
from __future__ import annotations

from shared.sieve.errors import SieveError
from shared.sieve.lexer import Kind, Lexer, Token
from shared.sieve.syntax import Argument, Command, Number, StringList, Tag, Test


class Parser:
    def __init__(self, text: str, max_nesting: int) -> None:
        self.tokens = Lexer(text).tokens()
        self.index = 0
        self.max_nesting = max_nesting

    def parse(self) -> list[Command]:
        commands = self._commands(depth=0)
        token = self._peek()
        if token.kind is not Kind.END:
            raise SieveError(f"unexpected {token.describe()}; a command was expected", token.line)
        return commands

    def _peek(self) -> Token:
        return self.tokens[self.index]

    def _take(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.END:
            self.index += 1
        return token

    def _is_punct(self, char: str) -> bool:
        token = self._peek()
        return token.kind is Kind.PUNCT and token.value == char

    def _expect(self, char: str, context: str) -> Token:
        token = self._take()
        if token.kind is not Kind.PUNCT or token.value != char:
            raise SieveError(f"expected '{char}' {context}, found {token.describe()}", token.line)
        return token

    def _enter(self, depth: int, line: int) -> int:
        if depth >= self.max_nesting:
            raise SieveError(f"nested more than {self.max_nesting} levels deep", line)
        return depth + 1

    def _commands(self, depth: int) -> list[Command]:
        commands = []
        while self._peek().kind is Kind.IDENTIFIER:
            commands.append(self._command(depth))
        return commands

    def _command(self, depth: int) -> Command:
        name = self._take()
        command = Command(str(name.value), name.line)
        command.arguments = self._arguments()
        command.tests, command.test_list = self._test_part(depth)
        if self._is_punct(";"):
            self._take()
            return command
        if self._is_punct("{"):
            self._take()
            inner = self._enter(depth, name.line)
            command.block = self._commands(inner)
            self._expect("}", f"to close the block of '{name.value}' (line {name.line})")
            return command
        token = self._peek()
        raise SieveError(f"expected ';' or '{{' after '{name.value}', found {token.describe()}",
                         token.line)

    def _arguments(self) -> list[Argument]:
        arguments: list[Argument] = []
        while True:
            token = self._peek()
            if token.kind is Kind.TAG:
                self._take()
                arguments.append(Tag(str(token.value), token.line))
            elif token.kind is Kind.NUMBER:
                self._take()
                arguments.append(Number(int(token.value), token.line))
            elif token.kind is Kind.STRING:
                self._take()
                arguments.append(StringList((str(token.value),), False, token.line))
            elif self._is_punct("["):
                arguments.append(self._string_list())
            else:
                return arguments

    def _string_list(self) -> StringList:
        start = self._take()
        values = []
        while True:
            token = self._take()
            if token.kind is not Kind.STRING:
                raise SieveError(f"expected a string in the list, found {token.describe()}",
                                 token.line)
            values.append(str(token.value))
            if self._is_punct(","):
                self._take()
                continue
            self._expect("]", f"to close the string list of line {start.line}")
            return StringList(tuple(values), True, start.line)

    def _test_part(self, depth: int) -> tuple[list[Test], bool]:
        token = self._peek()
        if token.kind is Kind.IDENTIFIER:
            return [self._test(depth)], False
        if self._is_punct("("):
            return self._test_list(depth), True
        return [], False

    def _test_list(self, depth: int) -> list[Test]:
        start = self._take()
        inner = self._enter(depth, start.line)
        tests = []
        while True:
            token = self._peek()
            if token.kind is not Kind.IDENTIFIER:
                raise SieveError(f"expected a test, found {token.describe()}", token.line)
            tests.append(self._test(inner))
            if self._is_punct(","):
                self._take()
                continue
            self._expect(")", f"to close the test list of line {start.line}")
            return tests

    def _test(self, depth: int) -> Test:
        name = self._take()
        inner = self._enter(depth, name.line)
        test = Test(str(name.value), name.line)
        test.arguments = self._arguments()
        test.tests, test.test_list = self._test_part(inner)
        return test


def parse(text: str, max_nesting: int) -> list[Command]:
    """Parse a whole script; SieveError with the line of the first problem."""
    return Parser(text, max_nesting).parse()
