"""Demo content for the built-in site: the blog of Lantern Coffee Roasters, a fictional roaster.

A fresh server should give an agent something real to work on: several authors in different
roles, nested categories, tags, posts in every status, pages with a child page, threaded
comments in every moderation state and a few images. Everything is deterministic (a seeded
``random.Random`` and fixed specs below) so tests can rely on the counts; only dates move, being
relative to the moment of seeding so the blog always looks current and scheduled posts stay in
the future. The images are drawn in code as PNGs (zlib + struct) so no imaging library or asset
file is needed."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aiconnector.db import models as m
from aiconnector.sites.builtin import slugify

BLOG_NAME = "Lantern Coffee Roasters"
BLOG_DESCRIPTION = "Small-batch coffee, roasted in Portland and shipped the day it cools."
_SEED = 20240517

# --- specs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    role: str


@dataclass(frozen=True)
class DemoTerm:
    name: str
    slug: str
    parent: str | None = None
    description: str = ""


@dataclass(frozen=True)
class DemoImage:
    filename: str
    title: str
    alt_text: str
    caption: str
    # (top colour, bottom colour, stripe colour): drawn as a gradient with soft stripes.
    palette: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    author: str


@dataclass(frozen=True)
class DemoPost:
    title: str
    author: str
    days_ago: int  # negative: scheduled in the future
    blocks: tuple[str, ...]
    status: str = "publish"
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    image: str | None = None
    comment_status: str = "open"


@dataclass(frozen=True)
class DemoPage:
    title: str
    author: str  # "admin" means the administrator passed to ``seed_demo_content``
    blocks: tuple[str, ...]
    status: str = "publish"
    parent: str | None = None
    menu_order: int = 0


@dataclass(frozen=True)
class DemoComment:
    key: str
    author: str  # a demo username, or "Name <email>" for a visitor
    content: str
    status: str = "approved"
    reply_to: str | None = None


@dataclass(frozen=True)
class DemoThread:
    post: str  # slug of the post
    comments: tuple[DemoComment, ...] = field(default_factory=tuple)


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("emma", "Emma Lindqvist", "editor"),
    DemoUser("arjun", "Arjun Mehta", "author"),
    DemoUser("lena", "Lena Okafor", "author"),
    DemoUser("carlos", "Carlos Ruiz", "contributor"),
    DemoUser("sam", "Sam Porter", "subscriber"),
)

DEMO_CATEGORIES: tuple[DemoTerm, ...] = (
    DemoTerm("News", "news", description="What is new at the roastery."),
    DemoTerm("Product updates", "product-updates", "news", "New coffees, gear and subscription changes."),
    DemoTerm("Guides", "guides", description="Getting more out of every bag."),
    DemoTerm("Brewing tutorials", "tutorials", "guides", "Step-by-step recipes for every brewer."),
    DemoTerm("Engineering", "engineering", description="How we build the roaster, the shop and the tools."),
    DemoTerm("Sourcing", "sourcing", description="Farms, importers and the people behind each lot."),
    DemoTerm("Community", "community", description="Events, cuppings and neighbours."),
)

DEMO_TAGS: tuple[DemoTerm, ...] = tuple(
    DemoTerm(name, slugify(name))
    for name in (
        "Espresso",
        "Pour-over",
        "Cold brew",
        "Ethiopia",
        "Colombia",
        "Sustainability",
        "Equipment",
        "Events",
        "Decaf",
        "Recipes",
    )
)

DEMO_IMAGES: tuple[DemoImage, ...] = (
    DemoImage(
        "crema-gradient.png",
        "Espresso crema",
        "Warm brown gradient reminiscent of espresso crema",
        "The colour we chase on every shot.",
        ((58, 30, 16), (214, 160, 96), (120, 70, 35)),
        "emma",
    ),
    DemoImage(
        "morning-light.png",
        "Morning light at the roastery",
        "Peach-to-cream gradient like early light through the roastery windows",
        "6:30 a.m., first batch of the day.",
        ((250, 196, 150), (255, 244, 222), (240, 170, 120)),
        "arjun",
    ),
    DemoImage(
        "green-beans.png",
        "Green coffee",
        "Olive and sage bands evoking unroasted green coffee beans",
        "Fresh arrivals from Huila, waiting for the roaster.",
        ((86, 110, 60), (182, 196, 140), (120, 140, 80)),
        "lena",
    ),
    DemoImage(
        "cold-brew.png",
        "Cold brew",
        "Deep blue to amber gradient suggesting cold brew over ice",
        "Sixteen hours, cold water, no shortcuts.",
        ((24, 36, 64), (190, 120, 60), (60, 80, 120)),
        "arjun",
    ),
    DemoImage(
        "cupping-table.png",
        "Cupping table",
        "Rows of soft brown stripes like cups on a cupping table",
        "Saturday public cupping, twelve coffees, one spoon each.",
        ((230, 214, 190), (150, 110, 80), (96, 64, 44)),
        "emma",
    ),
)

_P = "Lantern"  # keeps lines short in the copy below

DEMO_POSTS: tuple[DemoPost, ...] = (
    DemoPost(
        "Welcome to the new Lantern blog",
        "emma",
        230,
        (
            f"After six years of scribbling roast notes on kraft paper, {_P} finally has a proper home "
            "for them.",
            "Expect brewing guides, stories from the farms we buy from, the occasional deep dive into "
            "our roaster's control software and news about what is in the hopper.",
            "> Good coffee is mostly patience, and a little bit of arithmetic.",
        ),
        categories=("news",),
        tags=("events",),
        image="morning-light.png",
    ),
    DemoPost(
        "Dialing in espresso without losing your mind",
        "arjun",
        214,
        (
            "Dialing in is a conversation between grind, dose and time. Change one thing at a time.",
            "## Our starting recipe",
            "- 18 g in, 36 g out\n- 27 to 32 seconds\n- Water at 93 °C",
            "If it tastes sour, grind finer. If it tastes bitter and hollow, grind coarser. "
            "Taste every shot, even the bad ones: they teach the most.",
        ),
        categories=("guides", "tutorials"),
        tags=("espresso", "recipes"),
        image="crema-gradient.png",
    ),
    DemoPost(
        "Meet the Yirgacheffe lot from Konga cooperative",
        "lena",
        201,
        (
            "This year's Konga lot arrived in GrainPro bags in late spring and cupped at 88.",
            "Expect jasmine, bergamot and a finish like black tea with honey. We roast it light "
            "to keep those florals intact.",
            "We paid 2.4 times the Fairtrade minimum, and the premium goes to a new drying-bed project.",
        ),
        categories=("sourcing",),
        tags=("ethiopia", "sustainability"),
        image="green-beans.png",
    ),
    DemoPost(
        "A ten-minute pour-over for busy mornings",
        "arjun",
        188,
        (
            "You do not need a gooseneck kettle for a good pour-over, but it helps.",
            "## Recipe",
            "- 15 g coffee, medium-fine\n- 250 g water\n- 45 g bloom for 40 seconds\n- Pour in slow circles",
            "Total brew time should land between three and four minutes.",
        ),
        categories=("guides", "tutorials"),
        tags=("pour-over", "recipes"),
    ),
    DemoPost(
        "Our roaster now logs every batch",
        "lena",
        175,
        (
            "The old roaster spoke a serial protocol from 1994. We taught it to talk to a Raspberry Pi.",
            "Every batch now records bean temperature, air flow and gas every second, and the "
            "curves show up next to cupping scores so we can spot drift before you taste it.",
            "The logger is open source; the wiring diagram is on our workshop wall if you want a look.",
        ),
        categories=("engineering",),
        tags=("equipment",),
    ),
    DemoPost(
        "Cold brew season is here",
        "arjun",
        160,
        (
            "Cold brew is forgiving, cheap and perfect for warm afternoons.",
            "Use a coarse grind, one part coffee to eight parts cold water, and let it sit sixteen hours "
            "in the fridge. Dilute one to one with water or milk.",
        ),
        categories=("guides", "tutorials"),
        tags=("cold-brew", "recipes"),
        image="cold-brew.png",
    ),
    DemoPost(
        "Subscriptions can now skip a week",
        "emma",
        149,
        (
            "You asked, we listened: every subscription now has a skip button.",
            "Skipping moves your next delivery by one cycle and never charges you. "
            "You can skip up to three deliveries in a row.",
        ),
        categories=("news", "product-updates"),
    ),
    DemoPost(
        "Visiting Finca La Esperanza in Huila",
        "lena",
        137,
        (
            "Don Aurelio has grown coffee on these slopes for forty years, and his daughter Marcela now "
            "runs the wet mill.",
            "We walked the rows at 1,700 metres, tasted cascara tea and talked prices over arepas.",
            "Their washed Caturra arrives next month.",
        ),
        categories=("sourcing",),
        tags=("colombia", "sustainability"),
    ),
    DemoPost(
        "Saturday public cuppings are back",
        "emma",
        126,
        (
            "Every first Saturday of the month, 10 a.m., at the roastery. Free, no booking needed.",
            "We set out twelve coffees, explain the cupping form and then let you slurp loudly.",
        ),
        categories=("community",),
        tags=("events",),
        image="cupping-table.png",
    ),
    DemoPost(
        "Why we switched to compostable bags",
        "emma",
        118,
        (
            "Our new bags are made from wood pulp and a plant-based liner, with a one-way valve that is "
            "also compostable.",
            "They keep coffee fresh for about ten weeks, a little less than foil, which is why we now "
            "print the roast date larger.",
        ),
        categories=("news",),
        tags=("sustainability",),
    ),
    DemoPost(
        "The AeroPress recipe our baristas actually use",
        "arjun",
        104,
        (
            "Inverted, 17 g, 220 g water at 85 °C, stir ten times, steep ninety seconds, press gently.",
            "It is sweet, low in bitterness and hard to mess up, even before the first coffee of the day.",
        ),
        categories=("guides", "tutorials"),
        tags=("recipes",),
    ),
    DemoPost(
        "A decaf worth drinking after dinner",
        "lena",
        96,
        (
            "Our new sugarcane-process decaf from Colombia tastes like panela and red apple.",
            "The ethyl acetate process uses a by-product of sugarcane, and keeps far more sweetness than "
            "older methods.",
        ),
        categories=("news", "product-updates"),
        tags=("decaf", "colombia"),
    ),
    DemoPost(
        "How we test grinders",
        "arjun",
        88,
        (
            "We sieve grounds through five screens and weigh each fraction, then brew the same coffee "
            "on every grinder and taste blind.",
            "## What we look for",
            "- A narrow particle distribution\n- Little retention\n"
            "- Consistency from the first to the last dose",
        ),
        categories=("engineering",),
        tags=("equipment", "espresso"),
    ),
    DemoPost(
        "Holiday blend 2024 is roasting",
        "emma",
        75,
        (
            "This year's holiday blend pairs the Konga Yirgacheffe with a chocolatey Brazilian natural.",
            "Think orange peel, cocoa and a little cinnamon. Available in 250 g and 1 kg bags.",
        ),
        categories=("news", "product-updates"),
        tags=("ethiopia",),
    ),
    DemoPost(
        "Water chemistry for people who hate chemistry",
        "lena",
        63,
        (
            "Coffee is 98% water, so the water matters. Very soft water tastes flat; very hard water mutes "
            "acidity and scales your machine.",
            "Aim for 50 to 100 ppm total hardness. A cheap TDS meter and a jug filter get most people there.",
        ),
        categories=("guides",),
        tags=("espresso", "pour-over"),
    ),
    DemoPost(
        "Rebuilding the web shop checkout",
        "arjun",
        52,
        (
            "Checkout used to take seven steps. It now takes two, and page weight dropped by 60%.",
            "We moved to server-rendered HTML with a sprinkle of JavaScript, which also made it work "
            "properly with screen readers.",
        ),
        categories=("engineering",),
    ),
    DemoPost(
        "Latte art night with the neighbourhood",
        "emma",
        41,
        (
            "Forty people, six milk jugs and an astonishing number of lopsided hearts.",
            "Thank you to everyone who came. The next one is in spring; bring friends.",
        ),
        categories=("community",),
        tags=("events", "espresso"),
    ),
    DemoPost(
        "Roast profiles, explained with one chart",
        "lena",
        30,
        (
            "A roast profile is just temperature over time, but the shape tells you a lot: how fast the "
            "beans dried, when first crack started and how long development lasted.",
            "We now print a tiny version of the curve on every bag.",
        ),
        categories=("engineering", "guides"),
        tags=("equipment",),
    ),
    DemoPost(
        "Iced pour-over, the Japanese way",
        "arjun",
        18,
        (
            "Brew hot, straight onto ice. The quick chill locks in aromatics cold brew never has.",
            "Replace 40% of the brew water with ice in the carafe, and grind a notch finer.",
        ),
        categories=("guides", "tutorials"),
        tags=("pour-over", "recipes", "cold-brew"),
    ),
    # --- not published ------------------------------------------------------------------------
    DemoPost(
        "Draft: comparing three hand grinders",
        "arjun",
        9,
        ("Notes so far: the ceramic burr model is slow but quiet.", "Still need sieve data for the third."),
        status="draft",
        categories=("engineering",),
        tags=("equipment",),
    ),
    DemoPost(
        "My first week at the roastery",
        "carlos",
        7,
        (
            "I started on packing, which means I have now weighed roughly four thousand bags.",
            "Next week I get to run the sample roaster.",
        ),
        status="draft",
        categories=("community",),
    ),
    DemoPost(
        "French press tips from a packing-line veteran",
        "carlos",
        5,
        ("Stir after four minutes, skim the crust, wait four more and pour gently.",),
        status="pending",
        categories=("guides", "tutorials"),
        tags=("recipes",),
    ),
    DemoPost(
        "Sourcing trip to Sidama: what we learned",
        "lena",
        3,
        ("Draft for review: prices, the new washing station, and the drying-bed project update.",),
        status="pending",
        categories=("sourcing",),
        tags=("ethiopia",),
    ),
    DemoPost(
        "Spring menu preview",
        "emma",
        -7,
        ("A light-roast Kenyan, a new decaf espresso and a returning favourite from Guatemala.",),
        status="future",
        categories=("news", "product-updates"),
        tags=("decaf",),
    ),
    DemoPost(
        "Join us at the Portland Coffee Festival",
        "emma",
        -21,
        ("We will be pouring the Konga lot and running a brew-bar workshop at 2 p.m. each day.",),
        status="future",
        categories=("community",),
        tags=("events",),
    ),
    DemoPost(
        "Q3 wholesale pricing notes",
        "emma",
        12,
        ("Internal: green prices are up 12%; we hold retail prices until January.",),
        status="private",
        categories=("news",),
        comment_status="closed",
    ),
)

DEMO_PAGES: tuple[DemoPage, ...] = (
    DemoPage(
        "About us",
        "admin",
        (
            f"{_P} started in a garage in 2018 with a one-kilo roaster and a lot of optimism.",
            "Today we are eleven people roasting about two tonnes a month, still in small batches.",
        ),
        menu_order=1,
    ),
    DemoPage(
        "Contact",
        "emma",
        (
            "Email hello@lantern.example or visit us at 412 Alder Street, Tuesday to Saturday, 8 to 4.",
            "Wholesale enquiries: wholesale@lantern.example.",
        ),
        menu_order=2,
    ),
    DemoPage(
        "Privacy Policy",
        "admin",
        (
            "We collect only what we need to ship your coffee: name, address, e-mail and order history.",
            "We never sell your data. Ask us and we will delete it.",
        ),
        menu_order=3,
    ),
    DemoPage(
        "Cookie Policy",
        "admin",
        ("We use one cookie to keep you signed in and one to remember your basket. No trackers.",),
        parent="privacy-policy",
    ),
    DemoPage(
        "Wholesale",
        "emma",
        ("Coming soon: pricing tiers for cafés and offices.",),
        status="draft",
        menu_order=4,
    ),
)

DEMO_THREADS: tuple[DemoThread, ...] = (
    DemoThread(
        "dialing-in-espresso-without-losing-your-mind",
        (
            DemoComment(
                "c1", "Priya Natarajan <priya@example.net>", "The sour/bitter rule finally clicked. Thanks!"
            ),
            DemoComment("c2", "arjun", "Glad it helped! Sour first, then bitter, then sweet.", reply_to="c1"),
            DemoComment(
                "c3", "Priya Natarajan <priya@example.net>", "Sweet spot found at 30 s.", reply_to="c2"
            ),
            DemoComment("c4", "Tom Becker <tom@example.org>", "Does this work with a lever machine?"),
            DemoComment("c5", "Cheap Followers <promo@spam.example>", "Buy 10k followers now!!!", "spam"),
        ),
    ),
    DemoThread(
        "cold-brew-season-is-here",
        (
            DemoComment("c6", "sam", "Sixteen hours felt long but it was worth it."),
            DemoComment("c7", "emma", "Try it with a strip of orange peel next time.", reply_to="c6"),
            DemoComment(
                "c8", "Mia Chen <mia@example.com>", "Can I use your espresso blend for this?", "hold"
            ),
        ),
    ),
    DemoThread(
        "saturday-public-cuppings-are-back",
        (
            DemoComment("c9", "Jonas Weber <jonas@example.de>", "Are kids welcome?"),
            DemoComment("c10", "emma", "Absolutely, we have hot chocolate for them.", reply_to="c9"),
            DemoComment("c11", "Rina Sato <rina@example.jp>", "See you on Saturday!", "trash"),
        ),
    ),
    DemoThread(
        "meet-the-yirgacheffe-lot-from-konga-cooperative",
        (
            DemoComment("c12", "Daniel Osei <daniel@example.com>", "Love seeing the price paid published."),
            DemoComment("c13", "sam", "Is there a washed and a natural this year?", "hold"),
            DemoComment("c14", "Casino Bonus <win@spam.example>", "Click here for free spins", "spam"),
        ),
    ),
    DemoThread(
        "why-we-switched-to-compostable-bags",
        (
            DemoComment("c15", "Ana Lima <ana@example.br>", "Do they go in home compost or only industrial?"),
            DemoComment("c16", "emma", "Home compost works, it just takes a few months.", reply_to="c15"),
        ),
    ),
)

# --- PNG drawing -----------------------------------------------------------------------------

RGB = tuple[int, int, int]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(width: int, height: int, pixel: Callable[[int, int], RGB]) -> bytes:
    """Encode an 8-bit RGB PNG whose colour at (x, y) is ``pixel(x, y)``."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type "None" for every scanline
        for x in range(width):
            raw.extend(pixel(x, y))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + _png_chunk(b"IEND", b"")
    )


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def draw_image(image: DemoImage, width: int = 320, height: int = 180) -> bytes:
    """A vertical gradient with soft diagonal stripes: pleasant, tiny and unique per palette."""
    top, bottom, stripe = image.palette
    rows = [_mix(top, bottom, y / (height - 1)) for y in range(height)]

    def pixel(x: int, y: int) -> RGB:
        in_stripe = (x + y) % 48 < 10
        return _mix(rows[y], stripe, 0.35) if in_stripe else rows[y]

    return make_png(width, height, pixel)


# --- HTML --------------------------------------------------------------------------------------


def _block_html(block: str) -> str:
    """Tiny markup: ``## `` heading, ``- `` list lines, ``> `` quote, anything else a paragraph."""
    if block.startswith("## "):
        return f"<h2>{escape(block[3:])}</h2>"
    if block.startswith("> "):
        return f"<blockquote><p>{escape(block[2:])}</p></blockquote>"
    if block.startswith("- "):
        items = "".join(f"<li>{escape(line[2:])}</li>" for line in block.splitlines())
        return f"<ul>{items}</ul>"
    return f"<p>{escape(block)}</p>"


def render_blocks(blocks: tuple[str, ...]) -> str:
    return "\n".join(_block_html(b) for b in blocks)


def _excerpt(blocks: tuple[str, ...]) -> str:
    first = next((b for b in blocks if not b.startswith(("## ", "- ", "> "))), blocks[0])
    return first if len(first) <= 160 else first[:157].rstrip() + "..."


# --- seeding -----------------------------------------------------------------------------------


class _Seeder:
    """Holds the ids created so far, so specs can refer to users, terms and posts by name."""

    def __init__(self, session: AsyncSession, admin_user_id: int, now: datetime) -> None:
        self.s = session
        self.now = now
        self.rng = random.Random(_SEED)
        self.users: dict[str, int] = {"admin": admin_user_id}
        self.terms: dict[tuple[str, str], int] = {}
        self.media: dict[str, int] = {}
        self.posts: dict[str, m.Post] = {}

    def _when(self, days_ago: int) -> datetime:
        """A date ``days_ago`` days back (forward if negative) at a random working hour."""
        day = (self.now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        when = day + timedelta(hours=self.rng.randint(7, 17), minutes=self.rng.randint(0, 59))
        if days_ago < 0:
            return max(when, self.now + timedelta(days=1))
        return min(when, self.now - timedelta(minutes=5))

    async def add_users(self) -> None:
        existing = {
            u.username: u.id
            for u in (
                await self.s.scalars(
                    select(m.User).where(m.User.username.in_([u.username for u in DEMO_USERS]))
                )
            ).all()
        }
        for spec in DEMO_USERS:
            if spec.username in existing:
                self.users[spec.username] = existing[spec.username]
                continue
            user = m.User(
                username=spec.username,
                email=f"{spec.username}@lantern.example",
                display_name=spec.display_name,
                role=spec.role,
                password_hash=None,  # demo people exist to author content, not to sign in
                created_at=self.now - timedelta(days=240),
            )
            self.s.add(user)
            await self.s.flush()
            self.users[spec.username] = user.id

    async def add_terms(self) -> None:
        for taxonomy, specs in (("category", DEMO_CATEGORIES), ("post_tag", DEMO_TAGS)):
            for spec in specs:
                parent = self.terms[(taxonomy, spec.parent)] if spec.parent else None
                term = m.Term(
                    taxonomy=taxonomy,
                    name=spec.name,
                    slug=spec.slug,
                    description=spec.description,
                    parent_id=parent,
                )
                self.s.add(term)
                await self.s.flush()
                self.terms[(taxonomy, spec.slug)] = term.id

    async def add_images(self) -> None:
        for spec in DEMO_IMAGES:
            data = draw_image(spec)
            media = m.Media(
                title=spec.title,
                filename=spec.filename,
                mime_type="image/png",
                size=len(data),
                alt_text=spec.alt_text,
                caption=spec.caption,
                author_id=self.users[spec.author],
                created_at=self.now - timedelta(days=235),
            )
            self.s.add(media)
            await self.s.flush()
            self.s.add(m.MediaBlob(media_id=media.id, data=data))
            self.media[spec.filename] = media.id

    def _add_post(
        self,
        post_type: str,
        title: str,
        author: str,
        blocks: tuple[str, ...],
        date: datetime,
        **fields: object,
    ) -> m.Post:
        """Add a post or page; ``fields`` are the remaining ``m.Post`` columns of the spec."""
        post = m.Post(
            type=post_type,
            title=title,
            content=render_blocks(blocks),
            excerpt=_excerpt(blocks) if post_type == "post" else "",
            slug=slugify(title),
            author_id=self.users[author],
            created_at=date,
            date=date,
            modified_at=date + timedelta(hours=self.rng.choice((0, 0, 2, 26))),
            **fields,
        )
        self.s.add(post)
        return post

    async def add_posts(self) -> None:
        for spec in DEMO_POSTS:
            post = self._add_post(
                "post",
                spec.title,
                spec.author,
                spec.blocks,
                date=self._when(spec.days_ago),
                status=spec.status,
                comment_status=spec.comment_status,
                featured_media_id=self.media[spec.image] if spec.image else None,
            )
            await self.s.flush()
            self.posts[post.slug] = post
            self.s.add_all(
                [m.PostTerm(post_id=post.id, term_id=self.terms[("category", c)]) for c in spec.categories]
                + [m.PostTerm(post_id=post.id, term_id=self.terms[("post_tag", t)]) for t in spec.tags]
            )
            if spec.image:
                media = await self.s.get(m.Media, self.media[spec.image])
                assert media is not None
                media.post_id = post.id

    async def add_pages(self) -> None:
        for spec in DEMO_PAGES:
            page = self._add_post(
                "page",
                spec.title,
                spec.author,
                spec.blocks,
                date=self._when(228),
                status=spec.status,
                comment_status="closed",
                menu_order=spec.menu_order,
                parent_id=self.posts[spec.parent].id if spec.parent else None,
            )
            await self.s.flush()
            self.posts[page.slug] = page

    async def add_comments(self) -> None:
        for thread in DEMO_THREADS:
            post = self.posts[thread.post]
            created: dict[str, int] = {}
            when = post.date
            for spec in thread.comments:
                when = when + timedelta(hours=self.rng.randint(1, 30), minutes=self.rng.randint(0, 59))
                comment = m.Comment(
                    post_id=post.id,
                    parent_id=created[spec.reply_to] if spec.reply_to else None,
                    content=spec.content,
                    status=spec.status,
                    created_at=min(when, self.now - timedelta(minutes=1)),
                    **self._comment_author(spec.author),
                )
                self.s.add(comment)
                await self.s.flush()
                created[spec.key] = comment.id

    def _comment_author(self, author: str) -> dict[str, object]:
        if "<" in author:
            name, _, email = author.partition(" <")
            return {"user_id": None, "author_name": name, "author_email": email.rstrip(">")}
        spec = next(u for u in DEMO_USERS if u.username == author)
        return {
            "user_id": self.users[author],
            "author_name": spec.display_name,
            "author_email": f"{author}@lantern.example",
        }

    async def set_options(self) -> None:
        for name, value in (("blogname", BLOG_NAME), ("blogdescription", BLOG_DESCRIPTION)):
            await self.s.merge(m.SiteOption(name=name, value=value))


async def seed_demo_content(sessions: async_sessionmaker[AsyncSession], *, admin_user_id: int) -> bool:
    """Fill an empty site with the Lantern demo blog; return False (and change nothing) if the
    site already has posts or pages, so restarting a server never duplicates or resurrects demo
    content someone deleted or edited.

    Everything is written in one transaction: a failure leaves the site empty, not half-seeded."""
    async with sessions.begin() as s:
        if await s.scalar(select(func.count()).select_from(m.Post)):
            return False
        seeder = _Seeder(s, admin_user_id, datetime.now(UTC))
        await seeder.add_users()
        await seeder.add_terms()
        await seeder.add_images()
        await seeder.add_posts()
        await seeder.add_pages()
        await seeder.add_comments()
        await seeder.set_options()
    return True
