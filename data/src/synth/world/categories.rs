//! Object categories: the world's rules are written per category, not per object.

use crate::synth::objects::ObjectKind::{self, *};

/// What kind of thing an object is. The world's rules are written per category, so the
/// verdict of an object under a prompt follows from its category; the reasoning names it
/// (`a cat is a pet.`), which is what lets a model judge an object under a prompt it never saw
/// them together with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Human,
    Pet,
    Pest,
    Weapon,
    Medicine,
    Chemical,
    Fire,
    Property,
    Lock,
    Money,
    Document,
    Food,
    Toy,
    Household,
    Plant,
}

impl Category {
    /// The objects of this category.
    pub fn members(self) -> Vec<ObjectKind> {
        ObjectKind::MAIN
            .into_iter()
            .filter(|o| category(*o) == self)
            .collect()
    }

    /// The phrase the reasoning uses (`a cat is {phrase}.`).
    pub fn phrase(self) -> &'static str {
        match self {
            Category::Human => "a human",
            Category::Pet => "a pet",
            Category::Pest => "a pest",
            Category::Weapon => "a weapon",
            Category::Medicine => "a medicine",
            Category::Chemical => "a chemical",
            Category::Fire => "a fire",
            Category::Property => "property",
            Category::Lock => "a lock",
            Category::Money => "money",
            Category::Document => "an id document",
            Category::Food => "food",
            Category::Toy => "a toy",
            Category::Household => "a household thing",
            Category::Plant => "a plant",
        }
    }

    /// The category as a noun without its article, as the reasoning's restated intent uses it
    /// (`how to kill the pest`).
    pub fn noun(self) -> &'static str {
        let phrase = self.phrase();
        phrase
            .strip_prefix("a ")
            .or_else(|| phrase.strip_prefix("an "))
            .unwrap_or(phrase)
    }
}

/// The category of a main object.
pub fn category(object: ObjectKind) -> Category {
    use Category::*;
    match object {
        Person => Human,
        Dog | Cat => Pet,
        Mosquito | Spider | Rat | ObjectKind::Germ => Pest,
        Knife | Gun => Weapon,
        PillBottle | Syringe => Medicine,
        Bleach => Chemical,
        Campfire | Grill => Fire,
        Car | House | Kitchen | Computer => Property,
        Padlock => Lock,
        Banknote => Money,
        IdCard | Passport => Document,
        Cake | Bread | Apple | Lemon => Food,
        TeddyBear | Ball => Toy,
        Book | GiftBox => Household,
        Flower => Plant,
        // Distractors are never what a prompt is about; no rule names them.
        Cup | Leaf | Star => Household,
    }
}
