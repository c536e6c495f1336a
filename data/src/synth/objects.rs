//! The object kinds of the synthetic world and how each is drawn in its unit square.

use super::draw::Colour;

pub(super) const SKIN: Colour = [224, 172, 132];
pub(super) const BLACK: Colour = [25, 25, 25];
pub(super) const WHITE: Colour = [250, 250, 250];
pub(super) const GREY: Colour = [128, 128, 128];
pub(super) const SILVER: Colour = [196, 200, 206];
pub(super) const BROWN: Colour = [120, 72, 36];
pub(super) const WOOD: Colour = [176, 124, 72];
pub(super) const YELLOW: Colour = [245, 205, 40];
pub(super) const ORANGE: Colour = [240, 130, 30];
pub(super) const RED: Colour = [205, 40, 40];
pub(super) const GREEN: Colour = [50, 150, 60];
pub(super) const BLUE: Colour = [45, 90, 200];
pub(super) const PINK: Colour = [240, 140, 180];
pub(super) const SKY: Colour = [150, 200, 240];
pub(super) const GOLD: Colour = [212, 170, 50];
pub(super) const PURPLE: Colour = [130, 70, 170];

/// Named colours objects may have; the name is used in image descriptions.
pub const COLOURS: [(&str, Colour); 12] = [
    ("red", RED),
    ("blue", BLUE),
    ("green", GREEN),
    ("yellow", YELLOW),
    ("orange", ORANGE),
    ("pink", PINK),
    ("purple", PURPLE),
    ("brown", BROWN),
    ("black", BLACK),
    ("white", WHITE),
    ("grey", GREY),
    ("silver", SILVER),
];

/// Every kind of object the world draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Person,
    Dog,
    Cat,
    Mosquito,
    Spider,
    Rat,
    Knife,
    Gun,
    Syringe,
    PillBottle,
    Bleach,
    Campfire,
    Grill,
    Car,
    House,
    Kitchen,
    Padlock,
    Banknote,
    IdCard,
    Passport,
    Cake,
    Bread,
    Apple,
    Lemon,
    TeddyBear,
    Ball,
    Book,
    Flower,
    Computer,
    Germ,
    GiftBox,
    // Distractors only: small neutral things that may stand beside the main object.
    Cup,
    Leaf,
    Star,
}

use ObjectKind::*;

impl ObjectKind {
    /// The objects prompts are about.
    pub const MAIN: [ObjectKind; 31] = [
        Person, Dog, Cat, Mosquito, Spider, Rat, Knife, Gun, Syringe, PillBottle, Bleach, Campfire,
        Grill, Car, House, Kitchen, Padlock, Banknote, IdCard, Passport, Cake, Bread, Apple, Lemon,
        TeddyBear, Ball, Book, Flower, Computer, Germ, GiftBox,
    ];
    /// Small neutral objects that may be drawn beside the main one.
    pub const DISTRACTORS: [ObjectKind; 3] = [Cup, Leaf, Star];

    /// The noun used in text (may be two words).
    pub fn noun(self) -> &'static str {
        match self {
            Person => "person",
            Dog => "dog",
            Cat => "cat",
            Mosquito => "mosquito",
            Spider => "spider",
            Rat => "rat",
            Knife => "knife",
            Gun => "gun",
            Syringe => "syringe",
            PillBottle => "pill bottle",
            Bleach => "bleach bottle",
            Campfire => "campfire",
            Grill => "grill",
            Car => "car",
            House => "house",
            Kitchen => "kitchen",
            Padlock => "padlock",
            Banknote => "banknote",
            IdCard => "id card",
            Passport => "passport",
            Cake => "cake",
            Bread => "bread",
            Apple => "apple",
            Lemon => "lemon",
            TeddyBear => "teddy bear",
            Ball => "ball",
            Book => "book",
            Flower => "flower",
            Computer => "computer",
            Germ => "germ",
            GiftBox => "gift box",
            Cup => "cup",
            Leaf => "leaf",
            Star => "star",
        }
    }

    /// The noun with its indefinite article (`a knife`, `an apple`).
    pub fn with_article(self) -> String {
        let noun = self.noun();
        let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {noun}")
    }

    /// The name (from [`COLOURS`]) of the main part's colour, which descriptions mention, or
    /// `None` for kinds whose look needs no colour word. Each kind has one colour, as most real
    /// things have a typical one: a from-scratch vision tower learns colour far faster than
    /// shape, and colours are chosen so that kinds of different categories with similar
    /// silhouettes differ in colour.
    pub fn colour_name(self) -> Option<&'static str> {
        match self {
            Person => Some("blue"),
            Dog => Some("brown"),
            Cat => Some("orange"),
            Car => Some("yellow"),
            House => Some("white"),
            Ball => Some("blue"),
            Book => Some("purple"),
            Flower => Some("pink"),
            Apple => Some("red"),
            GiftBox => Some("green"),
            Cake => Some("pink"),
            Cup => Some("white"),
            _ => None,
        }
    }

    /// The colour of the main part.
    pub fn base_colour(self) -> Colour {
        if let Some((_, c)) = COLOURS.iter().find(|(n, _)| Some(*n) == self.colour_name()) {
            return *c;
        }
        match self {
            Mosquito | Spider => BLACK,
            Rat => GREY,
            Knife | Syringe | Gun => SILVER,
            PillBottle => ORANGE,
            Bleach => WHITE,
            Campfire => ORANGE,
            Grill => BLACK,
            Kitchen => WOOD,
            Padlock => GOLD,
            Banknote => [110, 170, 110],
            IdCard => [235, 240, 250],
            Passport => [130, 25, 40],
            Bread => [210, 160, 90],
            Lemon => YELLOW,
            TeddyBear => [160, 105, 60],
            Computer => [70, 70, 75],
            Germ => [90, 180, 60],
            Leaf => GREEN,
            Star => YELLOW,
            _ => GREY,
        }
    }
}
