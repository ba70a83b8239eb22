"""The SQLAlchemy dialect against three nodehost members in separate processes: URLs,
Core and ORM basics (create_all, insert, select, update, delete, transactions),
SQLite types, reflection, and an engine that outlives its leader."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from nodehost.sqlite.sqlalchemy_dialect import NodehostSQLiteDialect, create_engine, make_url
from tests.sqlite.wire_clusters import NodehostCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodehostCluster]:
    started = NodehostCluster(tmp_path_factory.mktemp("sqlalchemy"))
    yield started
    started.stop_all()


@pytest.fixture
def engine(cluster: NodehostCluster) -> Iterator[sa.Engine]:
    name = f"sa_{uuid.uuid4().hex[:8]}"
    created = create_engine(f"nodehost+sqlite://{','.join(cluster.addresses)}/{name}")
    yield created
    created.dispose()


# -- URLs --------------------------------------------------------------------------------


def connect_args(url: str | sa.URL) -> tuple[list[object], dict[str, object]]:
    parsed = sa.make_url(url) if isinstance(url, str) else url
    args, options = NodehostSQLiteDialect().create_connect_args(parsed)
    return list(args), options


def test_every_url_form_names_the_members_and_the_database() -> None:
    expected = ["10.0.0.1:9001", "10.0.0.2:9001"]
    forms: list[str | sa.URL] = [
        "nodehost+sqlite://10.0.0.1:9001/demo?host=10.0.0.2:9001",
        "nodehost+sqlite://[10.0.0.1:9001,10.0.0.2:9001]/demo",
        make_url("10.0.0.1:9001,10.0.0.2:9001", "demo"),
        make_url(expected, "demo"),
    ]
    for form in forms:
        args, options = connect_args(form)
        assert args == [expected], form
        assert options["database"] == "demo"
    # SQLAlchemy writes such a URL in the bracket form, which its parser reads back.
    rendered = make_url(expected, "demo").render_as_string()
    assert rendered == "nodehost+sqlite://[10.0.0.1:9001,10.0.0.2:9001]/demo"
    assert connect_args(rendered)[0] == [expected]
    assert connect_args(create_engine("nodehost+sqlite://10.0.0.1:9001,10.0.0.2:9001/demo").url)[
        0
    ] == [expected]
    args, options = connect_args(
        "nodehost+sqlite://[::1]:9001/demo?timeout=2.5&consistency=weak&max_message_size=1024"
    )
    assert args == [["[::1]:9001"]]
    assert (options["timeout"], options["consistency"], options["max_message_size"]) == (
        2.5,
        "weak",
        1024,
    )


def test_bad_urls_are_argument_errors() -> None:
    with pytest.raises(ArgumentError, match="a member is host:port"):
        connect_args("nodehost+sqlite://10.0.0.1/demo")
    with pytest.raises(ArgumentError, match="names no database"):
        connect_args("nodehost+sqlite://10.0.0.1:9001")
    with pytest.raises(ArgumentError, match="unknown URL options for nodehost\\+sqlite: colour"):
        connect_args("nodehost+sqlite://10.0.0.1:9001/demo?colour=red")
    with pytest.raises(ArgumentError, match="not a number"):
        connect_args("nodehost+sqlite://10.0.0.1:9001/demo?timeout=soon")
    with pytest.raises(ArgumentError, match="go together"):
        connect_args("nodehost+sqlite://10.0.0.1:9001/demo?ca=/x.pem")


def test_the_entry_point_serves_plain_sqlalchemy(cluster: NodehostCluster) -> None:
    first, second = cluster.addresses[:2]
    plain = sa.create_engine(f"nodehost+sqlite://{first}/plain?host={second}")
    assert isinstance(plain.dialect, NodehostSQLiteDialect)
    with plain.connect() as connection:
        assert connection.execute(sa.text("SELECT 1 + 1")).scalar() == 2
    assert plain.dialect.server_version_info is not None
    assert plain.dialect.server_version_info >= (3, 35)
    assert plain.dialect.insert_returning  # the members' SQLite has RETURNING
    plain.dispose()


# -- Core --------------------------------------------------------------------------------

metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.Column("added", sa.DateTime, default=lambda: datetime.datetime(2024, 1, 2, 3, 4, 5)),
    sa.Column("day", sa.Date),
    sa.Column("active", sa.Boolean, default=True),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("extra", sa.JSON),
)


def test_core_create_insert_select_update_delete(engine: sa.Engine) -> None:
    metadata.create_all(engine)
    assert sa.inspect(engine).get_table_names() == ["items"]
    assert [c["name"] for c in sa.inspect(engine).get_columns("items")] == [
        "id",
        "name",
        "price",
        "added",
        "day",
        "active",
        "blob",
        "extra",
    ]
    with engine.begin() as connection:
        result = connection.execute(
            items.insert().values(
                name="tea",
                price=2.5,
                day=datetime.date(2024, 5, 6),
                blob=b"\x00\xff",
                extra={"tags": ["hot"]},
            )
        )
        assert result.inserted_primary_key == (1,)
        connection.execute(
            items.insert(),
            [
                {"name": "cake", "price": 4, "active": True},
                {"name": "jam", "price": None, "active": False},
            ],
        )
    with engine.connect() as connection:
        row = connection.execute(sa.select(items).where(items.c.name == "tea")).one()
        assert row.price == 2.5
        assert row.added == datetime.datetime(2024, 1, 2, 3, 4, 5)
        assert row.day == datetime.date(2024, 5, 6)
        assert row.active is True
        assert row.blob == b"\x00\xff"
        assert row.extra == {"tags": ["hot"]}
        names = connection.execute(
            sa.select(items.c.name).where(items.c.active).order_by(items.c.name)
        ).scalars()
        assert list(names) == ["cake", "tea"]
    with engine.begin() as connection:
        updated = connection.execute(
            items.update().where(items.c.price > 3).values(price=items.c.price + 1)
        )
        assert updated.rowcount == 1
        deleted = connection.execute(items.delete().where(items.c.name == "jam"))
        assert deleted.rowcount == 1
        returned = connection.execute(
            items.insert().values(name="pie").returning(items.c.id, items.c.name)
        ).one()
        assert returned.name == "pie"
    with engine.connect() as connection:
        prices = connection.execute(sa.select(items.c.name, items.c.price).order_by(items.c.id))
        assert [(name, float(price or 0)) for name, price in prices] == [
            ("tea", 2.5),
            ("cake", 5.0),
            ("pie", 0.0),
        ]


def test_core_transactions_roll_back_whole(engine: sa.Engine) -> None:
    metadata.create_all(engine)
    with pytest.raises(IntegrityError, match="UNIQUE constraint failed"), engine.begin() as conn:
        conn.execute(items.insert().values(name="one"))
        conn.execute(items.insert().values(name="one"))
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 0
    with engine.connect() as connection, connection.begin():
        connection.execute(items.insert().values(name="kept"))
        savepoint = connection.begin_nested()
        connection.execute(items.insert().values(name="dropped"))
        savepoint.rollback()
        # reads inside the transaction see its own writes
        assert connection.execute(sa.select(items.c.name)).scalars().all() == ["kept"]
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as connection:
        connection.execute(items.insert().values(name="auto"))
    with engine.connect() as connection:
        names = connection.execute(sa.select(items.c.name).order_by(items.c.id)).scalars()
        assert list(names) == ["kept", "auto"]


# -- ORM ---------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40), unique=True)
    books: Mapped[list[Book]] = relationship(back_populates="author", cascade="all")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


def test_orm_create_add_query_update_delete(engine: sa.Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        ann = Author(name="ann", books=[Book(title="one"), Book(title="two")])
        session.add_all([ann, Author(name="bob")])
        session.commit()
        assert ann.id is not None and all(book.id for book in ann.books)
    with Session(engine) as session:
        ann = session.scalars(sa.select(Author).where(Author.name == "ann")).one()
        assert sorted(book.title for book in ann.books) == ["one", "two"]
        ann.name = "anne"
        session.commit()
    with Session(engine) as session:
        bob = session.scalars(sa.select(Author).where(Author.name == "bob")).one()
        session.delete(bob)
        session.commit()
        assert session.scalars(sa.select(Author.name)).all() == ["anne"]
        session.add(Author(name="anne"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        assert session.scalar(sa.select(sa.func.count(Book.id))) == 2


# -- failover ------------------------------------------------------------------------------


def test_an_engine_outlives_its_leader(tmp_path: Path) -> None:
    cluster = NodehostCluster(tmp_path)
    try:
        engine = create_engine(
            make_url(cluster.addresses, "failover", timeout="20"), pool_pre_ping=True
        )
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(items.insert().values(name="before"))
        cluster.kill(cluster.leader())  # SIGKILL
        with engine.begin() as connection:
            connection.execute(items.insert().values(name="after"))
        with engine.connect() as connection:
            names = connection.execute(sa.select(items.c.name).order_by(items.c.id)).scalars()
            assert list(names) == ["before", "after"]
        engine.dispose()
    finally:
        cluster.stop_all()


def test_operational_errors_reach_the_caller(tmp_path: Path) -> None:
    engine = create_engine("nodehost+sqlite://127.0.0.1:1/nowhere?timeout=0.5")
    with pytest.raises(OperationalError, match="no member reachable"):
        engine.connect()
