//! `parse_date(value [, order])`: a date from the spellings customer files use, or NULL.
//!
//! Sources hold birth dates and contract dates as ISO text (`1956-04-09`), compact digits
//! (`19560409`, often loaded as an integer), European (`09.04.1956`, `9/4/1956`) or American
//! (`4/9/1956`) order, sometimes with a time after them. A cast fails the whole query on the
//! first impossible value (`1931-04-72`); this function returns NULL for it instead, so a
//! matcher can count it and go on.
//!
//! Day and month are told apart by value when one of them is above 12; otherwise `order`
//! decides: `'dmy'` (the default) or `'mdy'`. Two-digit years are NULL: whether `01/02/03`
//! is 2003 or 1903 is not knowable from the value.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, Date32Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::strings::Strs;

/// Days since 1970-01-01 of a proleptic Gregorian date, or None when it does not exist.
fn days(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > month_days[m as usize - 1] {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i32 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Month-before-day or day-before-month for values where both are ≤ 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    DayMonth,
    MonthDay,
}

/// The date a text spells, as days since 1970-01-01.
pub fn parse_date_days(raw: &str, order: Order) -> Option<i32> {
    let s = raw.trim();
    // A time after the date ("1956-04-09T10:00", "09.04.1956 10:00") is ignored.
    let s = s.split(['T', ' ']).next().unwrap_or("");
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() != 8 {
            return None;
        }
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        // YYYYMMDD when it reads as a date with a plausible year, else DDMMYYYY / MMDDYYYY.
        let (y, m, d) = (n(0..4)? as i32, n(4..6)?, n(6..8)?);
        if (1000..=2999).contains(&y) {
            if let Some(x) = days(y, m, d) {
                return Some(x);
            }
        }
        let (a, b, y) = (n(0..2)?, n(2..4)?, n(4..8)? as i32);
        return day_month(a, b, y, order);
    }
    let parts: Vec<&str> = s.split(['-', '/', '.']).collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 4) {
        return None;
    }
    let nums: Vec<u32> = parts
        .iter()
        .map(|p| p.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    if parts[0].len() == 4 {
        return days(nums[0] as i32, nums[1], nums[2]);
    }
    if parts[2].len() == 4 {
        return day_month(nums[0], nums[1], nums[2] as i32, order);
    }
    None
}

fn day_month(a: u32, b: u32, y: i32, order: Order) -> Option<i32> {
    let (d, m) = if a > 12 {
        (a, b)
    } else if b > 12 {
        (b, a)
    } else if order == Order::DayMonth {
        (a, b)
    } else {
        (b, a)
    };
    days(y, m, d)
}

/// `parse_date(value [, order])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ParseDate {
    signature: Signature,
}

impl Default for ParseDate {
    fn default() -> Self {
        Self::new()
    }
}

impl ParseDate {
    pub fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
        }
    }
}

fn order_arg(arg: Option<&ColumnarValue>) -> Result<Order> {
    match arg {
        None => Ok(Order::DayMonth),
        Some(ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        )) => match s.to_ascii_lowercase().as_str() {
            "dmy" => Ok(Order::DayMonth),
            "mdy" => Ok(Order::MonthDay),
            other => exec_err!("parse_date: order must be 'dmy' or 'mdy', got '{other}'"),
        },
        Some(_) => exec_err!("parse_date: order must be a string literal, 'dmy' or 'mdy'"),
    }
}

impl ScalarUDFImpl for ParseDate {
    fn name(&self) -> &str {
        "parse_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let order = order_arg(args.args.get(1))?;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(if scalar { 1 } else { args.number_rows })?;
        let out: ArrayRef = match input.data_type() {
            DataType::Date32 => input,
            DataType::Null => new_null_array(&DataType::Date32, input.len()),
            DataType::Date64 | DataType::Timestamp(_, _) => cast(&input, &DataType::Date32)?,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                parse_strings(&input, order)?
            }
            // Integers (19560409) and anything else: read their text.
            _ => parse_strings(&cast(&input, &DataType::Utf8)?, order)?,
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn parse_strings(input: &ArrayRef, order: Order) -> Result<ArrayRef> {
    let strs = Strs::new("parse_date", input)?;
    let mut b = Date32Builder::with_capacity(input.len());
    for i in 0..input.len() {
        b.append_option(strs.get(i).and_then(|s| parse_date_days(s, order)));
    }
    Ok(Arc::new(b.finish()) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    fn ymd(s: &str) -> Option<i32> {
        parse_date_days(s, Order::DayMonth)
    }

    #[test]
    fn spellings_of_one_date() {
        let d = days(1956, 4, 9);
        assert!(d.is_some());
        for s in [
            "1956-04-09",
            "19560409",
            "09.04.1956",
            "9/4/1956",
            "1956/4/9",
            " 1956-04-09T10:30:00 ",
        ] {
            assert_eq!(ymd(s), d, "{s}");
        }
        assert_eq!(parse_date_days("4/9/1956", Order::MonthDay), d);
        // Day above 12 decides the order whatever `order` says.
        assert_eq!(
            parse_date_days("04/29/1956", Order::DayMonth),
            days(1956, 4, 29)
        );
        assert_eq!(days(1970, 1, 1), Some(0));
        assert_eq!(days(2000, 3, 1), Some(11_017));
    }

    #[test]
    fn impossible_dates_are_none() {
        for s in [
            "1931-04-72",
            "1931-02-30",
            "19310230",
            "2001-02-29",
            "01/02/03",
            "",
            "abc",
            "1956-04",
        ] {
            assert_eq!(ymd(s), None, "{s}");
        }
        assert_eq!(ymd("2000-02-29"), days(2000, 2, 29));
    }

    #[test]
    fn compact_day_first_when_not_a_year() {
        assert_eq!(ymd("09041956"), days(1956, 4, 9));
    }

    #[test]
    fn non_strings() {
        let a: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            Some(19560409),
            None,
            Some(19310472),
        ]));
        let out = parse_strings(&cast(&a, &DataType::Utf8).unwrap(), Order::DayMonth).unwrap();
        let out = out.as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        assert_eq!(out.value(0), days(1956, 4, 9).unwrap());
        assert!(out.is_null(1) && out.is_null(2));
    }
}
