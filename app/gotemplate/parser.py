"""Go text/template's parser: items to a tree per template name (the main one plus each define/block).

Errors read as Go's: `template: NAME:LINE: message`, LINE being that of the last item read.
"""

from __future__ import annotations

import ast
import re

from app.gotemplate import nodes as n
from app.gotemplate.errors import TemplateError
from app.gotemplate.lexer import Item, T, go_quote, lex

MAX_PAREN_DEPTH = 100  # Go allows 10000; Python's stack is the limit here
OPERAND_START = {T.BOOL, T.CHAR_CONSTANT, T.DOT, T.FIELD, T.IDENTIFIER, T.NUMBER, T.NIL, T.RAW_STRING,
                 T.STRING, T.VARIABLE, T.LEFT_PAREN}
NOT_EXECUTABLE = (n.Bool, n.Dot, n.Nil, n.Number, n.String)
OCTAL = re.compile(r"0[0-7_]+")
GO_ESCAPES = re.compile(r'(?:[^\\]|\\(?:[abfnrtv\\"\']|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}'
                        r'|U[0-9a-fA-F]{8}|[0-7]{3}))*', re.DOTALL)


class Parser:
    def __init__(self, name: str, text: str, functions: set[str]):
        self.name = name
        self.items = lex(text)
        self.index = 0
        self.furthest = 0
        self.functions = functions
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.paren_depth = 0
        self.action_line = 0
        self.trees: dict[str, n.ListNode] = {}

    # --- the item stream -----------------------------------------------------------------------
    def next(self) -> Item:
        item = self.items[min(self.index, len(self.items) - 1)]
        self.index += 1
        self.furthest = max(self.furthest, self.index - 1)
        return item

    def backup(self, count: int = 1) -> None:
        self.index -= count

    def peek(self) -> Item:
        item = self.next()
        self.backup()
        return item

    def next_non_space(self) -> Item:
        item = self.next()
        while item.typ is T.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        return item

    def error(self, message: str):
        line = self.items[min(self.furthest, len(self.items) - 1)].line
        raise TemplateError(f"template: {self.name}:{line}: {message}", line=line)

    def unexpected(self, item: Item, context: str):
        if item.typ is T.ERROR:
            extra = ""
            if self.action_line and self.action_line != item.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.error(f"{item}{extra}")
        self.error(f"unexpected {item} in {context}")

    def expect(self, typ: T, context: str) -> Item:
        item = self.next_non_space()
        if item.typ is not typ:
            self.unexpected(item, context)
        return item

    # --- templates ------------------------------------------------------------------------------
    def parse(self) -> dict[str, n.ListNode]:
        root = n.ListNode(self.peek().pos)
        while self.peek().typ is not T.EOF:
            if self.peek().typ is T.LEFT_DELIM:
                start = self.index
                self.next()
                if self.next_non_space().typ is T.DEFINE:
                    self.parse_definition()
                    continue
                self.index = start
            node = self.text_or_action()
            if isinstance(node, (n.End, n.Else)):
                self.error(f"unexpected {node}")
            root.nodes.append(node)
        self.add(self.name, root)
        return self.trees

    def add(self, name: str, root: n.ListNode) -> None:
        existing = self.trees.get(name)
        if existing is not None and not is_empty(existing) and not is_empty(root):
            self.error(f"template: multiple definition of template {n.Template(0, name, None).name!r}")
        if existing is None or is_empty(existing):
            self.trees[name] = root

    def parse_definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in (T.STRING, T.RAW_STRING):
            self.unexpected(item, context)
        name = self.unquote(item.val)
        self.expect(T.RIGHT_DELIM, context)
        self.define_body(name, context)

    def define_body(self, name: str, context: str) -> None:
        """The body of `define` or `block` up to its {{end}}, with its own `$`, added as template `name`."""
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, n.End):
            self.error(f"unexpected {end} in {context}")
        self.add(name, body)

    def item_list(self) -> tuple[n.ListNode, n.Node]:
        body = n.ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ is not T.EOF:
            node = self.text_or_action()
            if isinstance(node, (n.End, n.Else)):
                return body, node
            body.nodes.append(node)
        self.error("unexpected EOF")

    def text_or_action(self) -> n.Node:
        item = self.next_non_space()
        if item.typ is T.TEXT:
            return n.Text(item.pos, item.val)
        if item.typ is T.LEFT_DELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(item, "input")

    def action(self) -> n.Node:
        item = self.next_non_space()
        controls = {T.BLOCK: self.block_control, T.ELSE: self.else_control, T.END: self.end_control,
                    T.IF: lambda: self.parse_control("if"), T.RANGE: lambda: self.parse_control("range"),
                    T.TEMPLATE: self.template_control, T.WITH: lambda: self.parse_control("with")}
        if item.typ in (T.BREAK, T.CONTINUE):
            return self.branch_control(item)
        if item.typ in controls:
            return controls[item.typ]()
        self.backup()
        item = self.peek()
        return n.Action(item.pos, self.pipeline("command", T.RIGHT_DELIM))

    def branch_control(self, keyword: Item) -> n.Node:
        word = keyword.val
        item = self.next_non_space()
        if item.typ is not T.RIGHT_DELIM:
            self.unexpected(item, f"{{{{{word}}}}}")
        if not self.range_depth:
            self.error(f"{{{{{word}}}}} outside {{{{range}}}}")
        return n.Break(keyword.pos) if keyword.typ is T.BREAK else n.Continue(keyword.pos)

    def parse_control(self, context: str) -> n.Branch:
        saved = len(self.vars)
        try:
            pipe = self.pipeline(context, T.RIGHT_DELIM)
            self.range_depth += context == "range"
            body, next_node = self.item_list()
            self.range_depth -= context == "range"
            else_body = None
            if isinstance(next_node, n.Else):
                follow = self.peek().typ
                if (context, follow) in (("if", T.IF), ("with", T.WITH)):
                    self.next()
                    else_body = n.ListNode(next_node.pos, [self.parse_control(context)])
                else:
                    else_body, next_node = self.item_list()
                    if not isinstance(next_node, n.End):
                        self.error(f"expected end; found {next_node}")
            return n.Branch(pipe.pos, context, pipe, body, else_body)
        finally:
            del self.vars[saved:]

    def end_control(self) -> n.Node:
        return n.End(self.expect(T.RIGHT_DELIM, "end").pos)

    def else_control(self) -> n.Node:
        peek = self.peek_non_space()
        if peek.typ in (T.IF, T.WITH):
            return n.Else(peek.pos)
        return n.Else(self.expect(T.RIGHT_DELIM, "else").pos)

    def block_control(self) -> n.Node:
        context = "block clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = self.pipeline(context, T.RIGHT_DELIM)
        self.define_body(name, context)
        return n.Template(item.pos, name, pipe)

    def template_control(self) -> n.Node:
        context = "template clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = None
        if self.next_non_space().typ is not T.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, T.RIGHT_DELIM)
        return n.Template(item.pos, name, pipe)

    def template_name(self, item: Item, context: str) -> str:
        if item.typ not in (T.STRING, T.RAW_STRING):
            self.unexpected(item, context)
        return self.unquote(item.val)

    # --- pipelines and commands -----------------------------------------------------------------
    def pipeline(self, context: str, end: T) -> n.Pipe:
        token = self.peek_non_space()
        pipe = n.Pipe(token.pos, token.line)
        self.declarations(pipe, context)
        while True:
            item = self.next_non_space()
            if item.typ is end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ not in OPERAND_START:
                self.unexpected(item, context)
            self.backup()
            pipe.cmds.append(self.command())

    def declarations(self, pipe: n.Pipe, context: str) -> None:
        while (var := self.peek_non_space()).typ is T.VARIABLE:
            start = self.index
            self.next_non_space()
            follow = self.peek_non_space()
            if follow.typ in (T.ASSIGN, T.DECLARE):
                pipe.is_assign = follow.typ is T.ASSIGN
                self.next_non_space()
                self.declare(pipe, var)
                return
            if follow.typ is T.CHAR and follow.val == ",":
                self.next_non_space()
                self.declare(pipe, var)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T.VARIABLE, T.RIGHT_DELIM, T.RIGHT_PAREN):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.index = start
            return

    def declare(self, pipe: n.Pipe, var: Item) -> None:
        pipe.decl.append(n.Variable(var.pos, [var.val]))
        self.vars.append(var.val)

    def check_pipeline(self, pipe: n.Pipe, context: str) -> None:
        if not pipe.cmds:
            self.error(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], NOT_EXECUTABLE):
                self.error(f"non executable command in pipeline stage {stage}")

    def command(self) -> n.Command:
        cmd = n.Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ is T.SPACE:
                continue
            if item.typ in (T.RIGHT_DELIM, T.RIGHT_PAREN):
                self.backup()
            elif item.typ is not T.PIPE:
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.error("empty command")
        return cmd

    def operand(self) -> n.Node | None:
        node = self.term()
        if node is None or self.peek().typ is not T.FIELD:
            return node
        chain = n.Chain(self.peek().pos, node)
        while self.peek().typ is T.FIELD:
            chain.fields.append(self.next().val[1:])
        if isinstance(node, n.Field):
            return n.Field(chain.pos, node.idents + chain.fields)
        if isinstance(node, n.Variable):
            return n.Variable(chain.pos, node.idents + chain.fields)
        if isinstance(node, NOT_EXECUTABLE):
            self.error(f"unexpected . after term {go_quote(str(node))}")
        return chain

    def term(self) -> n.Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ is T.IDENTIFIER:
            if item.val not in self.functions:
                self.error(f'function "{item.val}" not defined')
            return n.Identifier(item.pos, item.val)
        if typ is T.DOT:
            return n.Dot(item.pos)
        if typ is T.NIL:
            return n.Nil(item.pos)
        if typ is T.VARIABLE:
            return self.use_var(item)
        if typ is T.FIELD:
            return n.Field(item.pos, item.val[1:].split("."))
        if typ is T.BOOL:
            return n.Bool(item.pos, item.val == "true")
        if typ in (T.NUMBER, T.CHAR_CONSTANT):
            return n.Number(item.pos, item.val, self.number(item))
        if typ is T.LEFT_PAREN:
            if self.paren_depth >= MAX_PAREN_DEPTH:
                self.error("max expression depth exceeded")
            self.paren_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", T.RIGHT_PAREN)
            finally:
                self.paren_depth -= 1
        if typ in (T.STRING, T.RAW_STRING):
            return n.String(item.pos, item.val, self.unquote(item.val))
        self.backup()
        return None

    def use_var(self, item: Item) -> n.Variable:
        idents = item.val.split(".")
        if idents[0] not in self.vars:
            self.error(f'undefined variable "{idents[0]}"')
        return n.Variable(item.pos, idents)

    # --- literals -------------------------------------------------------------------------------
    def unquote(self, quoted: str) -> str:
        if quoted.startswith("`"):
            return quoted[1:-1].replace("\r", "")
        if not GO_ESCAPES.fullmatch(quoted[1:-1]):
            self.error("invalid syntax")
        try:
            return ast.literal_eval(quoted)  # Go's escapes within "…" are Python's, minus a few
        except (SyntaxError, ValueError):
            self.error("invalid syntax")

    def number(self, item: Item) -> int | float | None:
        text = item.val
        if item.typ is T.CHAR_CONSTANT:
            rune = self.unquote('"' + text[1:-1].replace('"', '\\"') + '"')
            if len(rune) != 1:
                self.error(f"malformed character constant: {text}")
            return ord(rune)
        if text.endswith("i"):
            self.error(f"complex constants are not supported: {text}")
        integer = go_int(text)
        is_hex_int = text.lstrip("+-")[:2] in ("0x", "0X") and not set(text) & set("pP")
        if integer is not None and (is_hex_int or not set(text) & set(".eEpP")):
            return integer if -2**63 <= integer < 2**63 else None if integer < 2**64 else self.overflow(text)
        try:
            value = float.fromhex(text) if "x" in text.lower() else float(text)
        except ValueError:
            self.error(f"illegal number syntax: {go_quote(text)}")
        if value in (float("inf"), float("-inf")):
            self.error(f"illegal number syntax: {go_quote(text)}")
        if not set(text) & set(".eEpP"):
            self.overflow(text)
        return value

    def overflow(self, text: str):
        self.error(f"integer overflow: {go_quote(text)}")


def go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64)'s syntax, without its range check."""
    sign, body = ("", text)
    if text[:1] in ("+", "-"):
        sign, body = text[:1], text[1:]
    if OCTAL.fullmatch(body):
        body = "0o" + body[1:]
    try:
        return int(sign + body, 0)
    except ValueError:
        return None


def is_empty(root: n.Node) -> bool:
    if isinstance(root, n.ListNode):
        return all(is_empty(node) for node in root.nodes)
    if isinstance(root, n.Text):
        return not root.text.strip()
    return False


def parse(name: str, text: str, functions: set[str]) -> dict[str, n.ListNode]:
    return Parser(name, text, functions).parse()
