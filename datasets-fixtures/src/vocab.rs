//! The vocabularies the generator draws from: Suzhou's divisions and hospitals, GB/T 4754 industry sections,
//! surnames, ICD-10 codes, each with a weight so that distributions are skewed as real ones are.

/// Suzhou's ten county-level divisions (five districts, four county-level cities, the Industrial Park), with
/// their GB/T 2260 codes and a weight roughly proportional to their business population.
pub const DISTRICTS: &[(&str, &str, u32)] = &[
    ("姑苏区", "320508", 9),
    ("虎丘区", "320505", 10),
    ("吴中区", "320506", 13),
    ("相城区", "320507", 8),
    ("吴江区", "320509", 12),
    ("苏州工业园区", "320571", 14),
    ("常熟市", "320581", 11),
    ("张家港市", "320582", 9),
    ("昆山市", "320583", 16),
    ("太仓市", "320585", 5),
];

/// GB/T 4754-2017 sections: letter, name, weight among Suzhou enterprises. Rare sections (B, T, S) give the
/// small groups that a k-threshold must suppress.
pub const INDUSTRIES: &[(&str, &str, u32)] = &[
    ("A", "农、林、牧、渔业", 8),
    ("B", "采矿业", 1),
    ("C", "制造业", 260),
    ("D", "电力、热力、燃气及水生产和供应业", 4),
    ("E", "建筑业", 45),
    ("F", "批发和零售业", 300),
    ("G", "交通运输、仓储和邮政业", 30),
    ("H", "住宿和餐饮业", 40),
    ("I", "信息传输、软件和信息技术服务业", 60),
    ("J", "金融业", 12),
    ("K", "房地产业", 20),
    ("L", "租赁和商务服务业", 90),
    ("M", "科学研究和技术服务业", 70),
    ("N", "水利、环境和公共设施管理业", 5),
    ("O", "居民服务、修理和其他服务业", 18),
    ("P", "教育", 6),
    ("Q", "卫生和社会工作", 5),
    ("R", "文化、体育和娱乐业", 14),
    ("S", "公共管理、社会保障和社会组织", 1),
    ("T", "国际组织", 1),
];

/// A word of the company name that fits the industry section.
pub fn industry_word(section: &str) -> &'static str {
    match section {
        "A" => "农业科技",
        "B" => "矿业",
        "C" => "精密制造",
        "D" => "能源",
        "E" => "建设工程",
        "F" => "商贸",
        "G" => "物流",
        "H" => "餐饮管理",
        "I" => "信息技术",
        "J" => "投资管理",
        "K" => "置业",
        "L" => "企业管理咨询",
        "M" => "科技",
        "N" => "环境工程",
        "O" => "家政服务",
        "P" => "教育科技",
        "Q" => "健康管理",
        "R" => "文化传媒",
        "S" => "社会服务",
        _ => "国际交流",
    }
}

/// Characters for trade names (字号).
pub const TRADE_NAME_CHARS: &[char] = &[
    '华', '盛', '鑫', '恒', '泰', '瑞', '丰', '达', '金', '源', '新', '宏', '博', '晟', '嘉', '德', '永', '信', '通',
    '和', '万', '隆', '创', '汇', '吴', '苏', '姑', '园', '湖', '江', '海', '天', '东', '方', '明', '光', '中', '正',
    '科', '成',
];

/// Common single-character surnames, weighted by frequency (per mille, approximate national figures).
pub const SURNAMES: &[(&str, u32)] = &[
    ("王", 72),
    ("李", 71),
    ("张", 68),
    ("刘", 54),
    ("陈", 53),
    ("杨", 31),
    ("黄", 23),
    ("赵", 22),
    ("吴", 20),
    ("周", 19),
    ("徐", 17),
    ("孙", 16),
    ("马", 15),
    ("朱", 14),
    ("胡", 13),
    ("郭", 12),
    ("何", 12),
    ("高", 11),
    ("林", 11),
    ("罗", 10),
    ("郑", 9),
    ("梁", 9),
    ("谢", 8),
    ("宋", 7),
    ("唐", 7),
    ("许", 7),
    ("韩", 6),
    ("冯", 6),
    ("邓", 6),
    ("曹", 6),
    ("彭", 5),
    ("曾", 5),
    ("沈", 5),
    ("顾", 4),
    ("陆", 4),
    ("钱", 3),
    ("蒋", 3),
    ("范", 3),
];

/// Share (per mille) of names with a compound surname (欧阳, 司马, …, from `policies::formats`).
pub const COMPOUND_SURNAME_PER_MILLE: u32 = 15;

/// Characters of given names.
pub const GIVEN_NAME_CHARS: &[char] = &[
    '伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明', '超', '秀', '霞',
    '平', '刚', '桂', '英', '华', '文', '玉', '兰', '建', '国', '红', '梅', '婷', '雪', '晨', '浩', '宇', '轩', '欣',
    '怡', '佳', '子', '涵', '睿', '博', '琳', '嘉', '一', '思', '雨', '萱',
];

/// Region codes of resident IDs: Suzhou's districts most, other Jiangsu cities, then other provinces.
pub const ID_REGIONS: &[(&str, u32)] = &[
    ("320508", 14),
    ("320505", 8),
    ("320506", 10),
    ("320507", 6),
    ("320509", 9),
    ("320581", 8),
    ("320582", 7),
    ("320583", 10),
    ("320585", 4),
    ("320102", 3),
    ("320211", 3),
    ("320412", 2),
    ("321002", 2),
    ("320902", 2),
    ("310101", 3),
    ("330102", 2),
    ("340104", 3),
    ("410105", 3),
    ("370102", 2),
    ("510104", 2),
    ("420106", 1),
    ("360102", 1),
    ("130102", 1),
    ("230102", 1),
];

/// Mobile number segments (first three digits) and weights.
pub const MOBILE_PREFIXES: &[(&str, u32)] = &[
    ("139", 12),
    ("138", 12),
    ("137", 6),
    ("136", 6),
    ("135", 7),
    ("134", 3),
    ("150", 6),
    ("151", 6),
    ("152", 4),
    ("157", 2),
    ("158", 5),
    ("159", 5),
    ("182", 4),
    ("183", 2),
    ("187", 4),
    ("188", 3),
    ("130", 3),
    ("131", 3),
    ("132", 2),
    ("155", 2),
    ("156", 3),
    ("185", 2),
    ("186", 5),
    ("133", 2),
    ("153", 2),
    ("180", 2),
    ("181", 2),
    ("189", 4),
    ("177", 1),
    ("199", 2),
    ("198", 1),
    ("166", 1),
];

/// Hospitals, with the district they are in and a weight by visit volume. The last ones are small enough
/// that their rarer diagnoses fall under a k-threshold.
pub const HOSPITALS: &[(&str, u32)] = &[
    ("苏州大学附属第一医院", 22),
    ("苏州大学附属第二医院", 16),
    ("苏州市立医院", 18),
    ("苏州市中医医院", 9),
    ("苏州大学附属儿童医院", 8),
    ("苏州九龙医院", 6),
    ("苏州市第九人民医院", 7),
    ("昆山市第一人民医院", 9),
    ("常熟市第一人民医院", 7),
    ("张家港市第一人民医院", 6),
    ("太仓市第一人民医院", 4),
    ("苏州市相城人民医院", 3),
    ("苏州工业园区星海医院", 1),
];

/// ICD-10 codes with weights: common outpatient diagnoses first, then rare ones.
pub const ICD10: &[(&str, u32)] = &[
    ("J06.9", 1200), // acute upper respiratory infection
    ("I10", 900),    // essential hypertension
    ("E11.9", 600),  // type 2 diabetes
    ("K29.7", 450),  // gastritis
    ("M54.5", 400),  // low back pain
    ("J20.9", 350),  // acute bronchitis
    ("N39.0", 200),  // urinary tract infection
    ("R51", 180),    // headache
    ("H52.1", 160),  // myopia
    ("K02.9", 150),  // dental caries
    ("L30.9", 140),  // dermatitis
    ("I25.1", 120),  // atherosclerotic heart disease
    ("J45.9", 100),  // asthma
    ("F32.9", 80),   // depressive episode
    ("C34.9", 6),    // lung cancer
    ("C16.9", 3),    // stomach cancer
    ("G35", 1),      // multiple sclerosis
    ("E84.9", 1),    // cystic fibrosis
    ("Q90.9", 1),    // Down syndrome
];

/// Tax credit grades and their shares (per mille).
pub const CREDIT_GRADES: &[(&str, u32)] = &[("A", 300), ("B", 450), ("M", 150), ("C", 70), ("D", 30)];
