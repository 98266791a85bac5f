//! Synthetic but realistic Chinese data: people's names, team names,
//! activity titles and monthly themes.
//!
//! Surnames are drawn with a skew towards the common ones (as in a real
//! county, where a few surnames cover a large share of the population);
//! given names are one or two characters from a list of common ones.

use rand::Rng;

/// Common surnames, most frequent first.
const SURNAMES: [&str; 60] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金",
];

const GIVEN: [&str; 64] = [
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "华", "建国", "建华", "国强", "志强",
    "海燕", "红梅", "玉兰", "春生", "德明", "文", "斌", "宇", "浩", "凯", "鹏", "晨", "欣", "琳",
    "婷", "雪", "慧", "俊", "峰", "辉", "亮", "成", "玲", "燕", "萍", "红", "梅", "英", "兰", "云",
    "飞", "鑫", "倩", "晶", "瑶", "振",
];

/// Service categories of teams (the county's "1+12+N" sub-teams).
pub const TEAM_CATEGORIES: [&str; 12] = [
    "理论宣讲",
    "文化文艺",
    "卫生健康",
    "教育服务",
    "科学普及",
    "法律服务",
    "生态环保",
    "关爱老人",
    "移风易俗",
    "助困帮扶",
    "应急救援",
    "平安建设",
];

/// Activity forms: lecture, appraise, help, entertain, advocate, celebrate.
pub const ACTIVITY_FORMS: [&str; 6] = ["讲", "评", "帮", "乐", "倡", "庆"];

/// One theme a month (一月一主题), sent down by the county.
pub const MONTHLY_THEMES: [&str; 12] = [
    "新春送福迎新年",
    "学雷锋志愿服务月",
    "文明祭扫树新风",
    "劳动最光荣",
    "传承家风家训",
    "弘扬孝老爱亲",
    "党的光辉照我心",
    "平安乡村共建设",
    "尊师重教助学",
    "爱国奋斗新时代",
    "移风易俗树新风",
    "冬季暖心送温暖",
];

const ACTIVITY_SUBJECTS: [&str; 16] = [
    "政策宣讲会",
    "义诊进村",
    "广场舞展演",
    "法律咨询",
    "垃圾分类宣传",
    "看望留守老人",
    "农技培训",
    "防诈骗讲座",
    "道德模范评议",
    "好媳妇评选",
    "清洁家园行动",
    "读书分享会",
    "红白理事会宣讲",
    "安全知识进校园",
    "戏曲下乡",
    "助农采摘",
];

/// A person's name: surname plus one or two given-name characters.
pub fn person<R: Rng>(rng: &mut R) -> String {
    // Squaring a uniform draw skews towards the front of the list.
    let u: f64 = rng.gen();
    let surname = SURNAMES[((u * u) * SURNAMES.len() as f64) as usize % SURNAMES.len()];
    let given = GIVEN[rng.gen_range(0..GIVEN.len())];
    format!("{surname}{given}")
}

pub fn team_name(station_name: &str, category: &str) -> String {
    format!("{station_name}{category}志愿服务队")
}

pub fn activity_title<R: Rng>(rng: &mut R, theme: &str) -> String {
    let subject = ACTIVITY_SUBJECTS[rng.gen_range(0..ACTIVITY_SUBJECTS.len())];
    format!("“{theme}”{subject}")
}

pub fn township_name(index: usize) -> String {
    const PLACES: [&str; 26] = [
        "城关", "东关", "西关", "南关", "北关", "黄集", "李集", "王店", "张庄", "刘寨", "陈营",
        "杨楼", "赵岗", "周口", "吴桥", "徐屯", "孙店", "马头", "朱集", "胡楼", "郭庄", "何寨",
        "高桥", "林河", "罗湾", "郑营",
    ];
    format!("{}镇", indexed(&PLACES, index))
}

pub fn village_name(index: usize) -> String {
    const PLACES: [&str; 20] = [
        "前", "后", "东", "西", "南", "北", "大", "小", "新", "老", "上", "下", "中", "河", "山",
        "桥", "庙", "营", "岗", "湾",
    ];
    const SUFFIXES: [&str; 4] = ["庄村", "寨村", "楼村", "集村"];
    let first = PLACES[index % PLACES.len()];
    let second = SURNAMES[(index / PLACES.len()) % SURNAMES.len()];
    let suffix = SUFFIXES[(index / (PLACES.len() * SURNAMES.len())) % SUFFIXES.len()];
    format!("{first}{second}{suffix}")
}

fn indexed(list: &[&str], index: usize) -> String {
    if index < list.len() {
        list[index].to_string()
    } else {
        format!("{}{}", list[index % list.len()], index / list.len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_are_chinese_and_short() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let name = person(&mut rng);
            let chars = name.chars().count();
            assert!((2..=3).contains(&chars), "{name}");
            assert!(
                name.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{name}"
            );
        }
    }

    #[test]
    fn place_names_are_distinct_within_a_county() {
        let villages: std::collections::BTreeSet<String> = (0..650).map(village_name).collect();
        assert_eq!(villages.len(), 650);
        let townships: std::collections::BTreeSet<String> = (0..40).map(township_name).collect();
        assert_eq!(townships.len(), 40);
    }
}
