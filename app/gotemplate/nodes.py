"""The parse tree, with each node's text as Go's String() gives it (it appears in error messages)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str


@dataclass
class Dot(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class Nil(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class Bool(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class Number(Node):
    text: str
    value: int | float | None  # None: an integer too big for Go's int, an error when evaluated

    def __str__(self) -> str:
        return self.text


@dataclass
class String(Node):
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class Identifier(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass
class Field(Node):
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass
class Variable(Node):
    idents: list[str]  # "$x" then fields

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass
class Command(Node):
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, Pipe) else str(a) for a in self.args)


@dataclass
class Pipe(Node):
    line: int
    decl: list[Variable] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[Command] = field(default_factory=list)

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(map(str, self.decl)) + (" = " if self.is_assign else " := ")
        return head + " | ".join(map(str, self.cmds))


@dataclass
class Chain(Node):
    node: Node
    fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, Pipe) else str(self.node)
        return base + "".join("." + f for f in self.fields)


@dataclass
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return "".join(map(str, self.nodes))


@dataclass
class Action(Node):
    pipe: Pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class Branch(Node):
    keyword: str  # if, range, with
    pipe: Pipe
    body: ListNode
    else_body: ListNode | None

    def __str__(self) -> str:
        text = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.body)
        if self.else_body is not None:
            text += "{{else}}" + str(self.else_body)
        return text + "{{end}}"


@dataclass
class Template(Node):
    name: str
    pipe: Pipe | None

    def __str__(self) -> str:
        quoted = '"' + self.name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return "{{template " + quoted + (" " + str(self.pipe) if self.pipe else "") + "}}"


@dataclass
class Break(Node):
    def __str__(self) -> str:
        return "{{break}}"


@dataclass
class Continue(Node):
    def __str__(self) -> str:
        return "{{continue}}"


@dataclass
class End(Node):
    def __str__(self) -> str:
        return "{{end}}"


@dataclass
class Else(Node):
    def __str__(self) -> str:
        return "{{else}}"
