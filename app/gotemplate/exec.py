"""Executes a parsed template the way Go's text/template does with Option("missingkey=error").

Errors read as Go's: `template: NAME:LINE:COL: executing "NAME" at <NODE>: message`. Hostile templates
are bounded: Limits caps the steps (nodes walked, range iterations, function calls), template call
depth and output size.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.gotemplate import nodes as n
from app.gotemplate.errors import TemplateError
from app.gotemplate.funcs import BUILTINS, SIGNATURES, STRING_PARAMS, FuncError
from app.gotemplate.gofmt import format_one
from app.gotemplate.lexer import go_quote as quote
from app.gotemplate.values import StringMap, is_true, type_name

MISSING = object()  # no value piped in from a previous command


@dataclass(frozen=True)
class Limits:
    steps: int = 200_000
    depth: int = 100
    output_bytes: int = 4 << 20


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State:
    def __init__(self, name: str, text: str, trees: dict[str, n.ListNode], limits: Limits):
        self.parse_name = name
        self.name = name
        self.text = text
        self.trees = trees
        self.limits = limits
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.depth = 0
        self.node: n.Node | None = None
        self.vars: list[list] = []
        self.dot_boxed = False  # dot came out of a map or slice of interface{} (Go names its type so)

    # --- errors, limits, output -----------------------------------------------------------------
    def error(self, message: str):
        if self.node is None:
            raise TemplateError(f"template: {self.name}: {message}")
        pos = self.node.pos
        line = self.text.count("\n", 0, pos) + 1
        column = len(self.text[self.text.rfind("\n", 0, pos) + 1:pos].encode())
        raise TemplateError(f"template: {self.parse_name}:{line}:{column}: executing {quote(self.name)} at "
                            f"<{self.node}>: {message}", line=line)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.steps:
            self.error(f"template took more than {self.limits.steps} steps")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limits.output_bytes:
            self.error(f"output exceeds {self.limits.output_bytes} bytes")
        self.out.append(text)

    # --- variables --------------------------------------------------------------------------------
    def push(self, name: str, value) -> None:
        self.vars.append([name, value])

    def set_var(self, name: str, value) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        self.error(f"undefined variable: {name}")

    def var_value(self, name: str):
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        self.error(f"undefined variable: {name}")

    # --- walking ----------------------------------------------------------------------------------
    def walk(self, dot, node: n.Node) -> None:
        self.node = node
        self.step()
        if isinstance(node, n.Text):
            self.write(node.text)
        elif isinstance(node, n.ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, n.Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.node = node
                self.write("<no value>" if value is None else format_one(value, "v", None))
        elif isinstance(node, n.Branch):
            (self.walk_range if node.keyword == "range" else self.walk_if_or_with)(dot, node)
        elif isinstance(node, n.Template):
            self.walk_template(dot, node)
        elif isinstance(node, n.Break):
            raise _Break
        elif isinstance(node, n.Continue):
            raise _Continue

    def walk_if_or_with(self, dot, node: n.Branch) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        if is_true(value):
            if node.keyword == "with":
                self.with_dot(value, False, node.body)
            else:
                self.walk(dot, node.body)
        elif node.else_body is not None:
            self.walk(dot, node.else_body)
        del self.vars[mark:]

    def with_dot(self, dot, boxed: bool, body: n.Node) -> None:
        saved, self.dot_boxed = self.dot_boxed, boxed
        try:
            self.walk(dot, body)
        finally:
            self.dot_boxed = saved

    def walk_range(self, dot, node: n.Branch) -> None:
        self.node = node
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        try:
            if not self.range_items(node, value) and node.else_body is not None:
                self.walk(dot, node.else_body)
        except _Break:
            pass
        del self.vars[mark:]

    def range_items(self, node: n.Branch, value) -> bool:
        """Runs the body once per element; False when there were none."""
        decl = node.pipe.decl
        if isinstance(value, int) and not isinstance(value, bool):
            if len(decl) > 1:
                self.error(f"can't use {value} to iterate over more than one variable")
            pairs = ((None, i) for i in range(value))
            boxed = False
        elif isinstance(value, list):
            pairs, boxed = enumerate(value), True
        elif isinstance(value, dict):
            pairs, boxed = ((k, value[k]) for k in sorted(value)), not isinstance(value, StringMap)
        elif value is None:
            return False
        else:
            self.error(f"range can't iterate over {format_one(value, 'v', None)}")
        ran = False
        mark = len(self.vars)
        for key, elem in pairs:
            ran = True
            self.step()
            self.bind_range_vars(node.pipe, key, elem)
            try:
                self.with_dot(elem, boxed, node.body)
            except _Continue:
                pass
            del self.vars[mark:]
        return ran

    def bind_range_vars(self, pipe: n.Pipe, key, elem) -> None:
        decl = pipe.decl
        if not decl:
            return
        if pipe.is_assign:
            self.set_var(decl[0].idents[0], key if len(decl) > 1 else elem)
            if len(decl) > 1:
                self.set_var(decl[1].idents[0], elem)
            return
        self.vars[-1][1] = elem
        if len(decl) > 1:
            self.vars[-2][1] = key

    def walk_template(self, dot, node: n.Template) -> None:
        self.node = node
        tree = self.trees.get(node.name)
        if tree is None:
            self.error(f"template {quote(node.name)} not defined")
        if self.depth >= self.limits.depth:
            self.error(f"exceeded maximum template depth ({self.limits.depth})")
        value = self.eval_pipeline(dot, node.pipe) if node.pipe else None
        saved = (self.vars, self.name, self.dot_boxed)
        self.vars, self.name, self.dot_boxed = [["$", value]], node.name, False
        self.depth += 1
        try:
            self.walk(value, tree)
        finally:
            self.depth -= 1
            self.vars, self.name, self.dot_boxed = saved

    # --- evaluation -------------------------------------------------------------------------------
    def eval_pipeline(self, dot, pipe: n.Pipe):
        self.node = pipe
        value = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.idents[0], value)
            else:
                self.push(var.idents[0], value)
        return value

    def not_a_function(self, args: list[n.Node], final) -> None:
        if len(args) > 1 or final is not MISSING:
            self.error(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: n.Command, final):
        first = cmd.args[0]
        if isinstance(first, n.Field):
            self.node = first
            return self.eval_field_chain(dot, dot, self.dot_boxed, first.idents, cmd.args, final)
        if isinstance(first, n.Chain):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, n.Identifier):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, n.Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, n.Variable):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, n.Nil):
            self.error("nil is not a command")
        return self.constant(dot, first)

    def constant(self, dot, node: n.Node):
        if isinstance(node, n.Bool):
            return node.value
        if isinstance(node, n.Dot):
            return dot
        if isinstance(node, n.String):
            return node.text
        self.node = node
        if node.value is None:
            self.error(f"{node.text} overflows int")
        return node.value

    def eval_chain(self, dot, chain: n.Chain, args, final):
        self.node = chain
        if isinstance(chain.node, n.Nil):
            self.error(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, chain.node)
        self.node = chain
        return self.eval_field_chain(dot, receiver, False, chain.fields, args, final)

    def eval_variable(self, dot, var: n.Variable, args, final):
        self.node = var
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, False, var.idents[1:], args, final)

    def eval_field_chain(self, dot, receiver, boxed: bool, idents: list[str], args, final):
        for ident in idents[:-1]:
            receiver, boxed = self.eval_field(ident, None, MISSING, receiver, boxed)
        return self.eval_field(idents[-1], args, final, receiver, boxed)[0]

    def eval_field(self, name: str, args, final, receiver, boxed: bool):
        """receiver.name: the map entry (missingkey=error). Returns the value and whether it is boxed."""
        if receiver is None:
            if boxed:
                self.error(f"nil pointer evaluating interface {{}}.{name}")
            self.error(f"nil data; no entry for key {quote(name)}")
        if isinstance(receiver, dict):
            if (args is not None and len(args) > 1) or final is not MISSING:
                self.error(f"{name} is not a method but has arguments")
            if name not in receiver:
                self.error(f"map has no entry for key {quote(name)}")
            return receiver[name], not isinstance(receiver, StringMap)
        typ = "interface {}" if boxed else type_name(receiver)
        self.error(f"can't evaluate field {name} in type {typ}")

    def eval_function(self, dot, ident: n.Identifier, cmd: n.Node, args: list[n.Node] | None, final):
        self.node = ident
        name = ident.name
        params = args[1:] if args else []
        count = len(params) + (final is not MISSING)
        fixed, variadic = SIGNATURES[name]
        if variadic and count < fixed:
            self.error(f"wrong number of args for {name}: want at least {fixed} got {len(params)}")
        if not variadic and count != fixed:
            self.error(f"wrong number of args for {name}: want {fixed} got {count}")
        if name in ("and", "or"):
            return self.and_or(dot, name, params, final)
        values = [self.eval_arg(dot, arg, string=STRING_PARAMS.get(name) == i) for i, arg in enumerate(params)]
        if final is not MISSING:
            values.append(self.final_arg(final, string=STRING_PARAMS.get(name) == len(params)))
        self.step()
        try:
            result = BUILTINS[name](*values)
        except FuncError as exc:
            self.node = cmd
            self.error(f"error calling {name}: {exc}")
        if isinstance(result, str) and len(result) > self.limits.output_bytes:
            self.node = cmd
            self.error(f"error calling {name}: result exceeds {self.limits.output_bytes} bytes")
        return result

    def and_or(self, dot, name: str, params: list[n.Node], final):
        value = None
        for arg in params:
            value = self.eval_arg(dot, arg)
            if is_true(value) == (name == "or"):
                return value
        return value if final is MISSING else final

    def final_arg(self, value, string: bool):
        if string and not isinstance(value, str):
            self.error("invalid value; expected string" if value is None else
                       f"wrong type for value; expected string; got {type_name(value)}")
        return value

    def eval_arg(self, dot, node: n.Node, string: bool = False):
        self.node = node
        if isinstance(node, n.Nil):
            if string:
                self.error("cannot assign nil to string")
            return None
        if string and isinstance(node, (n.Bool, n.Number)):
            self.error(f"expected string; found {node}")
        if isinstance(node, n.Field):
            value = self.eval_field_chain(dot, dot, self.dot_boxed, node.idents, [node], MISSING)
        elif isinstance(node, n.Variable):
            value = self.eval_variable(dot, node, None, MISSING)
        elif isinstance(node, n.Pipe):
            value = self.eval_pipeline(dot, node)
        elif isinstance(node, n.Identifier):
            value = self.eval_function(dot, node, node, None, MISSING)
        elif isinstance(node, n.Chain):
            value = self.eval_chain(dot, node, None, MISSING)
        else:
            value = self.constant(dot, node)
        return self.final_arg(value, string) if string else value


def execute(name: str, text: str, trees: dict[str, n.ListNode], data, limits: Limits) -> str:
    state = State(name, text, trees, limits)
    root = trees.get(name)
    if root is None:
        raise TemplateError(f'template: {name}: "{name}" is an incomplete or empty template')
    state.push("$", data)
    state.walk(data, root)
    return "".join(state.out)
