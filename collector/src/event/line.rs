//! [`LineEvent`]: an [`Event`] as a parser builds it, its text borrowed from the line.
//!
//! An owned event costs a heap string per text field (about ten per access line: the line
//! itself, the dataset, method, path, query, version, referrer, user agent, ...), allocated
//! and copied by the parser, then freed by whoever drops the event. `vigie parse` only
//! writes the event as JSON and drops it: it takes the [`LineEvent`] and writes it with no
//! copy at all. Every other consumer gets the same fields as an [`Event`] through
//! [`LineEvent::into_event`]. A field is owned only when it is not a slice of the line (an
//! unescaped `\"`, a lower-cased protocol name).

use std::borrow::Cow;
use std::net::IpAddr;

use jiff::Timestamp;

use super::{Category, Event, EventId};

/// Declares [`LineEvent`] with the fields of [`Event`] (text as `Cow`, the rest as is) and
/// the conversions between the two, so that no field can be forgotten in one of them.
macro_rules! line_event {
    (
        text { $($text:ident),* $(,)? }
        optional_text { $($optional:ident),* $(,)? }
        copied { $($copied:ident: $ty:ty),* $(,)? }
    ) => {
        /// The fields of [`Event`] (see there for their meaning), the text ones borrowed from
        /// the line where they can be.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct LineEvent<'a> {
            /// The [`EventId`]'s text.
            pub id: Cow<'a, str>,
            $(pub $text: Cow<'a, str>,)*
            $(pub $optional: Option<Cow<'a, str>>,)*
            $(pub $copied: $ty,)*
        }

        impl LineEvent<'_> {
            /// The owned event, every field as it is here.
            pub fn into_event(self) -> Event {
                Event {
                    id: EventId(self.id.into_owned()),
                    $($text: self.$text.into_owned(),)*
                    $($optional: self.$optional.map(Cow::into_owned),)*
                    $($copied: self.$copied,)*
                }
            }

            /// `event`'s fields, borrowed.
            pub(crate) fn borrowing(event: &Event) -> LineEvent<'_> {
                LineEvent {
                    id: Cow::Borrowed(event.id.as_str()),
                    $($text: Cow::Borrowed(event.$text.as_str()),)*
                    $($optional: event.$optional.as_deref().map(Cow::Borrowed),)*
                    $($copied: event.$copied,)*
                }
            }
        }

        impl From<Event> for LineEvent<'static> {
            /// `event`'s fields, moved (for parsers that build an [`Event`] directly).
            fn from(event: Event) -> Self {
                LineEvent {
                    id: Cow::Owned(event.id.0),
                    $($text: Cow::Owned(event.$text),)*
                    $($optional: event.$optional.map(Cow::Owned),)*
                    $($copied: event.$copied,)*
                }
            }
        }
    };
}

line_event! {
    text { dataset, original }
    optional_text {
        action, transport, user_name, http_method, http_version, http_referrer, url_path, url_query,
        user_agent, observer_hostname, observer_ingress_interface, rule_name, log_level, message,
        source_country, source_city, source_as_organization, user_role, school_uai, school_name,
    }
    copied {
        timestamp: Timestamp,
        utc_offset_seconds: Option<i32>,
        category: Category,
        duration_ns: Option<u64>,
        source_ip: Option<IpAddr>,
        source_port: Option<u16>,
        destination_ip: Option<IpAddr>,
        destination_port: Option<u16>,
        source_bytes: Option<u64>,
        destination_bytes: Option<u64>,
        http_status: Option<u16>,
        source_as_number: Option<u32>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_keep_every_field() {
        let event = crate::event::tests::full_event();
        assert_eq!(LineEvent::borrowing(&event).into_event(), event);
        assert_eq!(LineEvent::from(event.clone()).into_event(), event);
        assert_eq!(LineEvent::default().into_event(), Event::default());
    }
}
